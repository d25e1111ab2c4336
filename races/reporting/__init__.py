"""Reporting: turn a Result into text people read (trace table, failure, replay line)."""
