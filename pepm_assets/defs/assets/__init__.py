"""Asset factories, one file per stage."""
