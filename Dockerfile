# energy-star container, first version: CPU build on Debian. The CUDA build (NVIDIA devel image
# with the `cuda` feature, runtime image for NVML) replaces these stages with the container issue.
# Call shape as AI Energy Score's image:
#   docker run --gpus all -v $PWD/results:/results [-e BENCHMARK_BACKEND=pytorch|vllm -e VLLM_ENDPOINT=...] \
#     energy_star --config-name text_generation backend.model=ORG/NAME

FROM rust:1.95-bookworm AS build
WORKDIR /src
RUN rustup target add wasm32-wasip2
COPY . .
RUN cargo build --release --locked -p energy-star \
 && install -D target/release/energy-star /out/energy-star

FROM debian:bookworm-slim
RUN useradd --create-home --uid 1000 user \
 && mkdir -p /results /opt/energy-star/plugins /opt/energy-star/configs \
 && chown user /results
COPY --from=build /out/energy-star /usr/local/bin/energy-star
COPY configs/ /opt/energy-star/configs/
ENV RESULTS_DIR=/results \
    ENERGY_STAR_CACHE_DIR=/tmp/energy-star-cache \
    HF_HOME=/home/user/.cache/huggingface
USER user
WORKDIR /results
# Drop-in plugins: mount a folder of *.wasm at /opt/energy-star/plugins.
# Without a subcommand the arguments are those of `run`, so the seed's commands work unchanged.
ENTRYPOINT ["energy-star"]
