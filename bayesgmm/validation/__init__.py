"""Validation and benchmarks: SBC, recovery, peer agreement, timing."""
