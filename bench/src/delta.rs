//! `ingot-bench delta`: what publishing a preset to Delta Lake costs: the
//! preset is written and flushed, compacted whole, then published, each step
//! timed; the copies' bytes are set against Ingot's own files'.

use std::path::PathBuf;
use std::time::Instant;

use ingot_bench::{Generator, Preset};
use ingot_engine::{Engine, Options, WalSync};

#[derive(clap::Args)]
pub struct DeltaArgs {
    /// Workload preset: tiny, small, medium or billion.
    #[arg(long, default_value = "small")]
    preset: String,
    /// Keep the files, and the Delta tables, in object storage
    /// (s3://bucket/prefix, with the AWS_* variables set).
    #[arg(long)]
    object_store: Option<String>,
    /// Where the data directory goes (default: a temporary directory).
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

pub fn run(args: DeltaArgs) -> Result<(), Box<dyn std::error::Error>> {
    let preset =
        Preset::by_name(&args.preset).ok_or_else(|| format!("unknown preset {:?}", args.preset))?;
    let temp = tempfile::tempdir()?;
    let dir = args.data_dir.unwrap_or_else(|| temp.path().join("data"));
    let mut options = Options::default();
    options.delta_lake = true;
    // Compaction and publishing run when this command asks, to time them.
    options.compaction = false;
    options.delta_interval = std::time::Duration::from_secs(3600);
    options.wal_sync = WalSync::None;
    if let Some(url) = &args.object_store {
        options.object_store = Some(ingot_engine::object_store_from_url(url)?);
    }
    let engine = Engine::open(&dir, options)?;
    let t = Instant::now();
    let mut generator = Generator::new(preset);
    while let Some(batch) = generator.next_batch(10_000) {
        engine.write_batch("public", "readings", &batch)?;
    }
    engine.flush()?;
    let load_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    engine.compact()?;
    let compact_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let records = engine.publish_delta()?;
    let publish_s = t.elapsed().as_secs_f64();
    let rows: u64 = records.iter().map(|r| r.rows_added).sum();
    let copies: u64 = records.iter().map(|r| r.bytes_added).sum();
    let files: usize = records.iter().map(|r| r.files_added).sum();
    let ingot: u64 = engine.files().iter().map(|f| f.bytes).sum();
    println!(
        "delta  preset={} store={} load+flush {load_s:.2} s  compact {compact_s:.2} s",
        preset.name,
        args.object_store.as_deref().unwrap_or("local disk"),
    );
    println!(
        "       publish {publish_s:.2} s: {files} files, {rows} rows ({:.2} M rows/s), \
         {copies} bytes of copies against {ingot} bytes of Ingot files ({:.2}x)",
        rows as f64 / publish_s / 1e6,
        copies as f64 / ingot.max(1) as f64,
    );
    engine.close()?;
    Ok(())
}
