# The grading image: the instructor repository plus what the sandbox and the kernel checks need.
#
#   docker build -f deploy/grader.Dockerfile -t dlkit-grader .
#   docker run --rm -v /srv/course:/course dlkit-grader \
#       python -m autograder batch --course-dir /course --assignment 03_optimization
#
# bubblewrap gives the sandbox its namespaces without root inside the container (run the
# container with user namespaces allowed, e.g. --security-opt seccomp=unconfined on older
# Docker); g++ compiles student CUDA C for the CPU emulator inside the sandbox. Results record
# which isolation each submission actually got.
ARG BASE=python:3.12.8-slim-bookworm
FROM ${BASE}

RUN apt-get update \
    && apt-get install -y --no-install-recommends bubblewrap g++ make git \
    && rm -rf /var/lib/apt/lists/*
COPY . /opt/dlkit
RUN PYTHON=/usr/local/bin/python sh /opt/dlkit/deploy/install.sh grader /opt/dlkit /opt/dlkit/requirements/base.lock
RUN useradd --create-home grader
USER grader
WORKDIR /opt/dlkit
ENV OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
CMD ["python", "-m", "autograder", "--help"]
