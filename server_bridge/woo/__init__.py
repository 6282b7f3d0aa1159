"""Woo (Wet open overheid): requests, assessments and publication packages."""
