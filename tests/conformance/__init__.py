"""Conformance suites: one per tool protocol; every backend of that protocol runs the same checks.

A backend proves itself by subclassing the suite in a test module and supplying its fixtures
(see each ``*_spec.py``). The suites are not collected on their own (no ``Test`` prefix).
"""
