"""The whole market: every spot + perp pair's funding facts (from the recorded data at
an instant, or from the venue now), ranked by expected net annualised yield
(rank.py), for ``orchestrator screen`` and ``pairs: auto``."""
