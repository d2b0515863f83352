"""`python -m srpipe` (also what `torchrun -m srpipe` runs)."""

from srpipe.cli import main

main()
