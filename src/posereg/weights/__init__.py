"""Bundled network weights (data only; see ``posereg.registration.pretrained_pipeline_path``)."""
