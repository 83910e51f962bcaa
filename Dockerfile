# pf-webhook image: `docker build -t pf-webhook .`
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY webhook ./webhook
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim
COPY --from=build /install /usr/local
USER 65532:65532
EXPOSE 8443 8080
ENTRYPOINT ["pf-webhook"]
CMD ["serve"]
