"""Stage 1: learn how a target domain degrades images (DSGAN), then synthesise LR/HR pairs."""
