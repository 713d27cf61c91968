# wsmon container image: slim, non-root, health-checked.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY wsmon ./wsmon
RUN pip install . && useradd --system --uid 10001 --no-create-home wsmon
COPY targets.toml /etc/wsmon/targets.toml

USER 10001
EXPOSE 9095
# The slim image has no curl: ask Python for /-/healthy.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9095/-/healthy', timeout=4)"]
ENTRYPOINT ["wsmon"]
CMD ["serve", "--config", "/etc/wsmon/targets.toml"]
