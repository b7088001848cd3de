#!/bin/sh
# The image's entry point.
#   IMAGE [OPTIONS]          mario-tui --batch OPTIONS: trains headless, runs land in ~/checkpoints (the volume)
#   IMAGE app [OPTIONS]      the app inside tmux (needs -it); detach with ctrl+b d, come back with
#                            `docker exec -it CONTAINER tmux attach -t mario`
#   IMAGE mario-tui ARGS     any mario-tui command line (--eval, --resume RUN --batch, --help)
#   IMAGE bash|sh|tmux ...   a shell or tmux itself
set -e
case "${1:-}" in
    app) shift; exec tmux new-session -s mario mario-tui "$@" ;;
    mario-tui|bash|sh|tmux|python|python3) exec "$@" ;;
    *) exec mario-tui --batch "$@" ;;
esac
