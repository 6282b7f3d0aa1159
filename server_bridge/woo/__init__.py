"""Woo (Wet open overheid) disclosure: ground codes, requests and assessments of archived
messages (cases), and the publication package. Each concern is its own module."""
