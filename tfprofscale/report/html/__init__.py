"""Offline, interactive HTML pages of a profile, a sweep and an audit (plotly.js inline, no request leaves the page)."""
