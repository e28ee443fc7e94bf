"""Training: the only layer that imports Lightning.

Loss schedules (``schedules``, plain objects), the typed configurations read from YAML, the
Lightning modules and training calls of the three trainers (``volume`` with
``synthetic_heads``, ``slice``, ``reloc``; the shared loop in ``loop``). Every trainer writes
its network as a model file (``posereg.models.artifact``), which inference reads without this
package. Importing ``posereg.training`` itself loads only the schedules; the trainers import
Lightning when their module is imported.
"""

from posereg.training.schedules import Stage, StageSchedule, salehi_schedule

__all__ = ["Stage", "StageSchedule", "salehi_schedule"]
