"""Helpers shared by the test tiers (fakes, workspaces, fault drivers)."""
