"""`python -m mmeval` (also what `torchrun -m mmeval` runs)."""

from mmeval.cli import main

main()
