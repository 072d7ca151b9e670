# One image for every s3lite service: the gateway and the storage nodes differ only in
# their command (see docker-compose.yml). `docker run IMAGE --help` lists the commands.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /build
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install . \
    && rm -rf /build \
    && useradd --system --uid 10001 --home-dir /data s3lite \
    && mkdir -p /data \
    && chown s3lite:s3lite /data

# Named volumes mounted at /data start as a copy of this directory, owned by s3lite.
USER s3lite
WORKDIR /data
VOLUME ["/data"]
EXPOSE 9000

ENTRYPOINT ["s3lite"]
# Without a command: the embedded cluster (gateway and six nodes in one process).
CMD ["serve", "--data-dir", "/data", "--listen", "0.0.0.0:9000"]
