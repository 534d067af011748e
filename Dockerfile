# energy-star container: a drop-in for the AI Energy Score image. Built with CUDA on NVIDIA's
# devel image, run on the matching runtime image (NVML and the driver come from the NVIDIA
# container toolkit at run time). The seed's commands work unchanged:
#
#   docker build -t energy_star .
#   docker run --gpus all --shm-size 1g -v $PWD/results:/results \
#     [-v ~/.cache/huggingface:/home/user/.cache/huggingface] \
#     [-v $PWD/plugins:/opt/energy-star/plugins:ro] [-v $PWD/configs:/opt/energy-star/configs:ro] \
#     [-e BENCHMARK_BACKEND=pytorch|vllm -e VLLM_ENDPOINT=http://host.docker.internal:8000/v1] \
#     energy_star --config-name text_generation backend.model=ORG/NAME
#
# Results (report, summaries GPU_ENERGY_WH.txt and GPU_ENERGY_SUMMARY.json, energy timeline) go
# to /results after every run; an incomplete run exits 1. Models and datasets are read from the
# mounted Hugging Face cache (energy-star does not download). Drop-in plugins: *.wasm in
# /opt/energy-star/plugins. Configs mounted at /opt/energy-star/configs override the built-ins.
# The binary links libcuda.so.1, which the toolkit injects under --gpus (with NVML's
# libnvidia-ml.so.1): without a GPU the binary does not start in this image.
# Build context: .dockerignore keeps target/ (local builds, many GiB) and .git out of COPY . .

ARG CUDA_VERSION=12.8.1
ARG UBUNTU=ubuntu22.04

FROM nvidia/cuda:${CUDA_VERSION}-devel-${UBUNTU} AS build
ARG RUST_VERSION=1.95.0
# candle's kernels are compiled for this compute capability (90: H100/H200); no GPU is needed
# to build.
ARG CUDA_COMPUTE_CAP=90
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# Build tools only; their exact versions do not reach the final image.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl build-essential pkg-config \
 && rm -rf /var/lib/apt/lists/*
ENV RUSTUP_HOME=/usr/local/rustup \
    CARGO_HOME=/usr/local/cargo \
    PATH=/usr/local/cargo/bin:$PATH
RUN curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs \
    | sh -s -- -y --no-modify-path --profile minimal --default-toolchain "${RUST_VERSION}" --target wasm32-wasip2
WORKDIR /src
COPY . .
# The built-in plugins are built for wasm32-wasip2 by host/build.rs and embedded in the binary.
RUN CUDA_COMPUTE_CAP="${CUDA_COMPUTE_CAP}" cargo build --release --locked -p energy-star --features cuda \
 && install -D target/release/energy-star /out/energy-star

FROM nvidia/cuda:${CUDA_VERSION}-runtime-${UBUNTU}
ARG SOURCE_URL=https://example.invalid/energy-star
LABEL org.opencontainers.image.title="energy-star" \
      org.opencontainers.image.source="${SOURCE_URL}" \
      org.opencontainers.image.description="Measures the energy AI models use for inference; AI Energy Score compatible results" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility \
    RESULTS_DIR=/results \
    HF_HOME=/home/user/.cache/huggingface \
    ENERGY_STAR_CACHE_DIR=/home/user/.cache/energy-star \
    ENERGY_STAR_CONFIG_DIR=/opt/energy-star/configs
RUN useradd --create-home --uid 1000 --user-group user \
 && mkdir -p /results /opt/energy-star/plugins /opt/energy-star/configs /home/user/.cache/huggingface /home/user/.cache/energy-star \
 && chown -R 1000:1000 /results /home/user/.cache
COPY --from=build /out/energy-star /usr/local/bin/energy-star
COPY configs/ /opt/energy-star/configs/
VOLUME ["/results"]
USER 1000:1000
WORKDIR /results
# No CMD: `docker run IMAGE ARGS` passes ARGS to energy-star as they are; without a subcommand
# they are those of `run`, as the original entrypoint took them.
ENTRYPOINT ["energy-star"]
