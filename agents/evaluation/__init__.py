"""Benchmark evaluation of the graphs: metrics, reports (JSON) and plots (PNG)."""
