"""Analysis of artifacts (agreement, drift, latency): reads outputs, never transforms graphs."""
