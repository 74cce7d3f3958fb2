"""Each claim family's own procedures, statistics helpers and figures, where the shared ones do not fit."""
