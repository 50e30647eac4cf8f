"""Issue 13 section 4: the security properties of the service, each shown on real components."""
