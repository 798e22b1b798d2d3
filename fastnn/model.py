"""Compatibility: ``fastnn.model`` was the module of ``Sequential`` (now ``fastnn.models``)."""

from fastnn.models import History, Model, Sequential
from fastnn.models.fastpath import PlanStep, Workspace

__all__ = ["History", "Model", "Sequential", "PlanStep", "Workspace"]
