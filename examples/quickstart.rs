//! The main job, end to end: an embedded SQLite file, a real segment created
//! (and a duplicate refused), the result printed.
//!
//! ```text
//! cargo run --example quickstart [-- path/to/segments.db]
//! ```
//!
//! Without a path it uses `segments-quickstart.db` in the system's temporary
//! directory, starting from a fresh file each run.

use std::path::PathBuf;

use segments::{Error, NewSegment, OrgId, Segments, SqliteStore};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = match std::env::args_os().nth(1) {
        Some(path) => PathBuf::from(path),
        None => {
            let path = std::env::temp_dir().join("segments-quickstart.db");
            for suffix in ["", "-wal", "-shm"] {
                let mut file = path.clone().into_os_string();
                file.push(suffix);
                let _ = std::fs::remove_file(file);
            }
            path
        }
    };

    let segments = Segments::new(SqliteStore::open(&path)?);
    println!("database: {}", path.display());

    let org = OrgId::new("acme")?;
    let name = "Q1 2024 Enterprise Prospects";
    let segment = match segments.find_by_name(&org, name)? {
        Some(existing) => {
            println!("segment {name:?} already exists; using it");
            existing
        }
        None => segments.create(
            &org,
            NewSegment::new(name).description(
                "High-value enterprise leads from Q1 outbound campaign, companies with 500+ employees in tech sector",
            ),
        )?,
    };
    println!("created segment:");
    println!("  id           {}", segment.id);
    println!("  name         {}", segment.name);
    println!(
        "  description  {}",
        segment.description.as_deref().unwrap_or("-")
    );
    println!("  source       {}", segment.source);
    println!("  current_size {}", segment.current_size);
    println!(
        "  created_at   {}",
        segment.created_at.format("%Y-%m-%dT%H:%M:%S%.6fZ")
    );

    // Names are unique per organization, whatever the case or spacing.
    match segments.create(&org, NewSegment::new("  q1 2024 ENTERPRISE   prospects ")) {
        Err(e @ Error::DuplicateName { .. }) => {
            println!("duplicate refused: {} (status {})", e, e.status_code())
        }
        other => return Err(format!("expected a duplicate-name error, got {other:?}").into()),
    }

    let read = segments.get(&org, segment.id)?;
    println!(
        "read back: {:?} with {} members",
        read.name, read.current_size
    );
    Ok(())
}
