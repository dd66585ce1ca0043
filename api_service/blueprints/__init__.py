"""HTTP routes: one resources blueprint per entity, plus health and docs."""
