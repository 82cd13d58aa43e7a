"""``podium auto``: probe, plan, train, blend and finish within a time budget (``session.auto``)."""
