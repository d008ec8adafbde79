"""Ticketing tools as sources: their own payloads in, the current decision written back."""
