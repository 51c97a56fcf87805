"""The developer and admin pages of billing."""
