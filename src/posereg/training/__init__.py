"""Training: schedules (plain objects) and, later, Lightning modules (imported lazily)."""

from posereg.training.schedules import Stage, StageSchedule, salehi_schedule

__all__ = ["Stage", "StageSchedule", "salehi_schedule"]
