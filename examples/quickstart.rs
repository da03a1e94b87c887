//! The main job, end to end: an embedded SQLite file, a real segment found
//! or created (and a duplicate refused), people added, removed, imported
//! and listed, the results printed.
//!
//! ```text
//! cargo run --example quickstart [-- path/to/segments.db]
//! ```
//!
//! Without a path it uses `segments-quickstart.db` in the system's temporary
//! directory, starting from a fresh file each run.

use std::path::PathBuf;

use segments_engine::{Error, NewSegment, OrgId, PageOptions, Segments, SqliteStore};

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
    // The org's segment of that name, or a new one (a rerun on the same
    // file finds the segment it made before).
    let segment = segments.find_or_create(
        &org,
        NewSegment::new(name).description(
            "High-value enterprise leads from Q1 outbound campaign, companies with 500+ employees in tech sector",
        ),
    )?;
    println!("segment:");
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

    // Fill it. Malformed PIDs are reported, never fatal.
    let added = segments.add_members(
        &org,
        segment.id,
        &[
            "p-a1b2c3d4e5f6",
            "p-x9y8z7w6v5u4",
            "p-ceef1fd768e389abd4d33fdd901a5964",
            "p-invalid!",
        ],
    )?;
    println!(
        "add_members: n_added={} n_redundant_additions={} invalid_pids={:?} new_current_size={}",
        added.n_added, added.n_redundant_additions, added.invalid_pids, added.new_current_size
    );
    let again = segments.add_members(&org, segment.id, &["p-a1b2c3d4e5f6"])?;
    println!(
        "adding p-a1b2c3d4e5f6 again: n_added={} n_redundant_additions={}",
        again.n_added, again.n_redundant_additions
    );
    let removed =
        segments.remove_members(&org, segment.id, &["p-x9y8z7w6v5u4", "p-not0a0member"])?;
    println!(
        "remove_members: n_deleted={} new_current_size={}",
        removed.n_deleted, removed.new_current_size
    );

    // A file's worth of PIDs, streamed in atomic batches of 10,000. Under
    // an idempotency key a rerun (after a crash, say) replays the batches
    // that committed instead of adding them twice.
    let imported = segments.find_or_create(&org, NewSegment::new("Imported leads"))?;
    let lines = (0..25_000u64).map(|i| {
        if i % 5_000 == 4_999 {
            format!("line {i} is not a pid")
        } else {
            format!("p-{:012x}", i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 16)
        }
    });
    let out = segments
        .with_idempotency_key("quickstart-import")
        .import_members(&org, imported.id, lines)?;
    println!(
        "import_members: n_batches={} n_added={} n_redundant_additions={} n_invalid={} new_current_size={}",
        out.n_batches, out.n_added, out.n_redundant_additions, out.n_invalid, out.new_current_size
    );
    for bad in &out.invalid_pids {
        println!("  skipped at position {}: {:?}", bad.position, bad.pid);
    }
    let last = segments.last_seq(&org)?;
    println!("the org's ledger holds {last} entries; the last two:");
    for change in segments
        .changes_since(
            &org,
            PageOptions::new().after(last.saturating_sub(2)).limit(2),
        )?
        .changes
    {
        println!("  #{} {:?}", change.seq, change.kind);
    }

    // Read it back: the documented page API, then the cursor API.
    let page = segments.members_page(&org, segment.id, 1)?;
    println!(
        "members page {}: total_count={} list_continues={}",
        page.page, page.total_count, page.list_continues
    );
    for m in &page.items {
        println!(
            "  {:<36} first_added_at {}",
            m.pid,
            m.first_added_at.format("%Y-%m-%dT%H:%M:%S%.6fZ")
        );
    }
    let first = segments.members(&org, segment.id, PageOptions::new().limit(1))?;
    println!(
        "cursor page of 1: {:?}, next cursor {}",
        first
            .members
            .iter()
            .map(|m| m.pid.as_str())
            .collect::<Vec<_>>(),
        first.next.map_or("none".to_owned(), |c| c.to_string())
    );

    let read = segments.get(&org, segment.id)?;
    println!(
        "read back: {:?} with current_size {}",
        read.name, read.current_size
    );
    Ok(())
}
