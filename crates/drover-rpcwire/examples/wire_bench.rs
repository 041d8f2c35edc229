//! Times the writers on a `get_all_records`-sized result, and the parsers on
//! a small call.
//!
//! Run with `cargo run --release -p drover-rpcwire --example wire_bench`.

use std::hint::black_box;
use std::time::Instant;

use drover_rpcwire::jsonrpc::{self, Version};
use drover_rpcwire::{xmlrpc, Limits, WireValue};

const RECORDS: usize = 10_000;
const FIELDS: usize = 90;
const RUNS: usize = 5;

/// A XenAPI-like record: uuids, references, labels, enums, ints, booleans,
/// string maps and reference sets.
fn record(i: usize) -> WireValue {
    let reference = |k: usize| format!("OpaqueRef:{i:08x}-{k:04x}-4a5b-8c9d-0e1f2a3b4c5d");
    let fields = (0..FIELDS)
        .map(|f| {
            let value = match f % 10 {
                0 => WireValue::Str(format!("{i:08x}-{f:04x}-4f6a-9b8c-7d6e5f4a3b2c")),
                1 => WireValue::Str(reference(f)),
                2 => WireValue::Str(format!("vm-{i} <web & db> tier {f}")),
                3 => WireValue::Str(String::new()),
                4 => WireValue::Str("Running".to_owned()),
                5 => WireValue::Int((i * FIELDS + f) as i64 * 1_048_576),
                6 => WireValue::Bool(i % 2 == 0),
                7 => WireValue::Struct(
                    (0..3)
                        .map(|k| (format!("key-{k}"), WireValue::Str(format!("value {i}.{k}"))))
                        .collect(),
                ),
                8 => WireValue::Array((0..3).map(|k| WireValue::Str(reference(k))).collect()),
                _ => WireValue::Str((i * 4096 + f).to_string()),
            };
            (format!("field_name_{f}"), value)
        })
        .collect();
    WireValue::Struct(fields)
}

/// Best milliseconds of `RUNS` runs of `write` into a fresh buffer and into a
/// reused one (no page faults), and the output size.
fn time_writer(write: impl Fn(&mut Vec<u8>)) -> (f64, f64, usize) {
    let best = |reuse: bool| {
        let mut out = Vec::new();
        let mut best = f64::INFINITY;
        for _ in 0..RUNS {
            if reuse {
                out.clear();
            } else {
                out = Vec::new();
            }
            let start = Instant::now();
            write(&mut out);
            best = best.min(start.elapsed().as_secs_f64() * 1e3);
            black_box(&out);
        }
        (best, out.len())
    };
    let (fresh, size) = best(false);
    let (reused, _) = best(true);
    (fresh, reused, size)
}

/// Calls per second of `parse`, which must succeed.
fn calls_per_second(parse: impl Fn() -> bool) -> f64 {
    const CALLS: u32 = 200_000;
    let start = Instant::now();
    for _ in 0..CALLS {
        assert!(black_box(parse()));
    }
    f64::from(CALLS) / start.elapsed().as_secs_f64()
}

fn main() {
    let all_records = WireValue::Struct(
        (0..RECORDS)
            .map(|i| {
                (
                    format!("OpaqueRef:{i:08x}-1b2c-4d5e-8f90-a1b2c3d4e5f6"),
                    record(i),
                )
            })
            .collect(),
    );
    println!("{RECORDS} records x {FIELDS} fields, best of {RUNS} runs, fresh / reused buffer:");
    let (fresh, reused, size) = time_writer(|out| xmlrpc::write_response(out, &all_records));
    println!(
        "  XML-RPC write:  {fresh:6.1} ms / {reused:6.1} ms  ({:.1} MiB)",
        mib(size)
    );
    let id = serde_json::json!("req-1");
    let (fresh, reused, size) =
        time_writer(|out| jsonrpc::write_success(out, &id, Version::V2, &all_records));
    println!(
        "  JSON-RPC write: {fresh:6.1} ms / {reused:6.1} ms  ({:.1} MiB)",
        mib(size)
    );

    let limits = Limits::default();
    let xml_call = b"<?xml version='1.0'?>\n<methodCall>\n<methodName>VM.get_record</methodName>\n\
        <params>\n<param>\n<value><string>OpaqueRef:4f1c6b2a-9d3e-4c5f-8a7b-1e2d3c4b5a69</string></value>\n</param>\n\
        <param>\n<value><string>OpaqueRef:0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d</string></value>\n</param>\n\
        </params>\n</methodCall>\n";
    let json_call = br#"{"jsonrpc": "2.0", "method": "VM.get_record", "params": ["OpaqueRef:4f1c6b2a-9d3e-4c5f-8a7b-1e2d3c4b5a69", "OpaqueRef:0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d"], "id": 17}"#;
    let xml_rate = calls_per_second(|| xmlrpc::parse_call(xml_call, &limits).is_ok());
    let json_rate = calls_per_second(|| jsonrpc::parse_call(json_call, &limits).is_ok());
    println!("small call parse: XML-RPC {xml_rate:.0} calls/s, JSON-RPC {json_rate:.0} calls/s");
}

fn mib(bytes: usize) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}
