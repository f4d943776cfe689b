"""Speed measurements: `mmeval bench` (end to end through the runner, and the comparison paths)."""
