//! Id generation, formatting and parsing; record encoding and decoding with
//! `session_core::codec` (MessagePack) against JSON.

// The encoded sizes are part of the comparison.
#![allow(clippy::print_stderr)]

use bench::sample_data;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use serde_json::json;
use session_core::{
    codec,
    time::{Duration, OffsetDateTime},
    Data, Id, Record,
};
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
    let expiry = OffsetDateTime::now_utc() + Duration::days(1);
    for (size, data) in [("small", sample_data()), ("large", large_data())] {
        let mut record = Record::new(expiry);
        record.data = data;
        // `session_core::codec` (MessagePack) against JSON (`serde_json`
        // with exact float round trips, what the codec used to be).
        let ours = codec::encode_record(&record).expect("encode");
        let json = serde_json::to_vec(&record).expect("encode json");
        group.throughput(Throughput::Elements(1));
        group.bench_with_input(BenchmarkId::new("encode/codec", size), &record, |b, r| {
            b.iter(|| black_box(codec::encode_record(r)));
        });
        group.bench_with_input(BenchmarkId::new("encode/json", size), &record, |b, r| {
            b.iter(|| black_box(serde_json::to_vec(r)));
        });
        group.bench_with_input(BenchmarkId::new("decode/codec", size), &ours, |b, bytes| {
            b.iter(|| black_box(codec::decode_record(bytes)));
        });
        group.bench_with_input(BenchmarkId::new("decode/json", size), &json, |b, bytes| {
            b.iter(|| black_box(serde_json::from_slice::<Record>(bytes)));
        });
        eprintln!(
            "codec {size}: codec (MessagePack) {} bytes, JSON {} bytes",
            ours.len(),
            json.len()
        );
    }
    group.finish();
}

criterion_group!(benches, ids, codecs);
criterion_main!(benches);
