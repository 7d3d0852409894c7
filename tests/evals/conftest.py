"""Shared fixtures for the eval tests."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_geneval():
    """One tiny random OWLv2 + CLIP GenEval scorer per session (building it costs seconds)."""
    from comfygen.evals.geneval import GenEvalRules, GenEvalScorer

    return GenEvalScorer.tiny(rules=GenEvalRules(threshold=0.0, counting_threshold=0.0, max_overlap=0.5))
