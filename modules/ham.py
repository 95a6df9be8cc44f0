"""Placeholder replaced by the Hamburger implementation."""
