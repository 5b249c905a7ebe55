"""Presenting a report: the printed table, the op table, the report's field checks."""
