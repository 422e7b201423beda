//! Id generation, formatting and parsing; record encoding in the formats a
//! store could use (JSON, what `session_core::codec` uses, against
//! MessagePack).

// The encoded sizes are part of the comparison.
#![allow(clippy::print_stderr)]

use bench::{criterion::Criterion, sample_data};
use criterion::{criterion_group, criterion_main, BenchmarkId, Throughput};
use serde_json::json;
use session_core::{codec, Data, Id};
use std::hint::black_box;

fn ids(c: &mut Criterion) {
    let mut group = c.benchmark_group("id");
    group.bench_function("generate", |b| b.iter(|| black_box(Id::default())));
    let id = Id::default();
    group.bench_function("display", |b| {
        b.iter(|| black_box(black_box(id).to_string()));
    });
    let text = id.to_string();
    group.bench_function("parse", |b| {
        b.iter(|| black_box(black_box(&text).parse::<Id>()));
    });
    group.finish();
}

/// About 10 KiB of data: a long cart.
fn large_data() -> Data {
    let mut data = sample_data();
    let items: Vec<_> = (0..100)
        .map(|i| json!({"sku": format!("SKU-{i:05}"), "qty": i % 7, "price": i as f64 * 1.25, "gift": i % 3 == 0}))
        .collect();
    data.insert("cart".into(), json!(items));
    data
}

fn codecs(c: &mut Criterion) {
    let mut group = c.benchmark_group("codec");
    for (size, data) in [("small", sample_data()), ("large", large_data())] {
        let json_bytes = codec::encode_data(&data).expect("encode json");
        let msgpack_bytes = rmp_serde::to_vec(&data).expect("encode msgpack");
        group.throughput(Throughput::Bytes(json_bytes.len() as u64));
        group.bench_with_input(BenchmarkId::new("encode/json", size), &data, |b, data| {
            b.iter(|| black_box(codec::encode_data(data)));
        });
        group.bench_with_input(
            BenchmarkId::new("encode/msgpack", size),
            &data,
            |b, data| b.iter(|| black_box(rmp_serde::to_vec(data))),
        );
        group.bench_with_input(
            BenchmarkId::new("decode/json", size),
            &json_bytes,
            |b, bytes| b.iter(|| black_box(codec::decode_data(bytes))),
        );
        group.bench_with_input(
            BenchmarkId::new("decode/msgpack", size),
            &msgpack_bytes,
            |b, bytes| b.iter(|| black_box(rmp_serde::from_slice::<Data>(bytes))),
        );
        eprintln!(
            "codec {size}: json {} bytes, msgpack {} bytes",
            json_bytes.len(),
            msgpack_bytes.len()
        );
    }
    group.finish();
}

criterion_group!(benches, ids, codecs);
criterion_main!(benches);
