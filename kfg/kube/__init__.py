"""Kubernetes' own rules for names and resource quantities, in one place."""
