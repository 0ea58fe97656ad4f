"""Measurement procedures (pymeasure Procedure subclasses); they use station roles only."""
