"""The load generator and benchmark report (`make bench`); talks HTTP only."""
