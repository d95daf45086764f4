# The student single-user server for a JupyterHub: the student edition of the course.
#
#   make release                                     # writes release/ (notebooks + kit)
#   docker build -f deploy/student.Dockerfile -t dlkit-student .
#
# The base is pinned (a dated jupyter/docker-stacks tag; bump it deliberately, with a rebuild
# and `make test`). Packages come from requirements/base.lock through deploy/install.sh, the
# same script tests/test_deploy.py runs. The notebooks are NOT baked in: students get them with
# nbgitpuller links (deploy/links.py), so a fix reaches them without a new image.
ARG BASE=quay.io/jupyter/minimal-notebook:2025-11-24
FROM ${BASE}

USER root
COPY requirements/base.lock /opt/dlkit/base.lock
COPY release/kit /opt/dlkit/kit
COPY deploy/install.sh /opt/dlkit/install.sh
# the student's nbgrader tools only (assignment list, Validate): no Formgrader, no Create Assignment
COPY release/jupyter-config /etc/jupyter
RUN PYTHON=/opt/conda/bin/python sh /opt/dlkit/install.sh student /opt/dlkit/kit /opt/dlkit/base.lock \
    && fix-permissions /opt/conda

# MNIST is optional: mount the IDX files (train-images-idx3-ubyte[.gz], ...) at this path and
# notebook 07 uses them; without them it trains on the embedded 8x8 digits.
ENV DLKIT_MNIST_DIR=/srv/data/mnist \
    OPENBLAS_NUM_THREADS=2 \
    OMP_NUM_THREADS=2

USER ${NB_UID}
WORKDIR /home/${NB_USER}
