"""Training: schedules (plain objects) and, later, Lightning modules (imported lazily)."""

from posereg.training.schedules import Stage, StageSchedule, kendall_schedule, salehi_schedule

__all__ = ["Stage", "StageSchedule", "kendall_schedule", "salehi_schedule"]
