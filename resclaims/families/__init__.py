"""Each claim family's own procedures and helpers, beside the shared ones in resclaims.procedures."""
