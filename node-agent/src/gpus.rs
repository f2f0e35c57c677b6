//! GPU detection: asks `nvidia-smi` (when it is on PATH) for every GPU's
//! index, model and memory. A machine without it simply has no GPUs.

use reef_proto::node::Gpu;
use std::time::Duration;

/// The GPUs of this machine, in index order.
pub async fn detect() -> Vec<Gpu> {
    let query = tokio::process::Command::new("nvidia-smi")
        .args([
            "--query-gpu=index,name,memory.total",
            "--format=csv,noheader,nounits",
        ])
        .kill_on_drop(true)
        .output();
    match tokio::time::timeout(Duration::from_secs(10), query).await {
        Ok(Ok(out)) if out.status.success() => {
            let gpus = parse(&String::from_utf8_lossy(&out.stdout));
            tracing::info!(count = gpus.len(), "GPUs detected with nvidia-smi");
            gpus
        }
        Ok(Ok(out)) => {
            tracing::warn!(status = %out.status, "nvidia-smi failed; no GPUs offered");
            Vec::new()
        }
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "nvidia-smi could not run; no GPUs offered");
            Vec::new()
        }
        Err(_) => {
            tracing::warn!("nvidia-smi did not answer within 10s; no GPUs offered");
            Vec::new()
        }
    }
}

/// Parses `index, name, memory.total [MiB]` lines; malformed lines are skipped.
pub fn parse(csv: &str) -> Vec<Gpu> {
    let mut gpus: Vec<Gpu> = csv
        .lines()
        .filter_map(|line| {
            let mut fields = line.split(',').map(str::trim);
            let index = fields.next()?.parse().ok()?;
            let model = fields.next()?.to_string();
            let mib: u64 = fields.next()?.parse().ok()?;
            (!model.is_empty()).then(|| Gpu {
                index,
                vendor: "NVIDIA".into(),
                model,
                vram_bytes: mib << 20,
            })
        })
        .collect();
    gpus.sort_by_key(|g| g.index);
    gpus.dedup_by_key(|g| g.index);
    gpus
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_nvidia_smi_csv() {
        let out =
            "0, NVIDIA H100 80GB HBM3, 81559\n1, NVIDIA GeForce RTX 4090, 24564\ngarbage\n2, , 1\n";
        let gpus = super::parse(out);
        assert_eq!(gpus.len(), 2);
        assert_eq!(gpus[0].model, "NVIDIA H100 80GB HBM3");
        assert_eq!(gpus[0].vram_bytes, 81559 << 20);
        assert_eq!(gpus[1].index, 1);
        assert!(super::parse("").is_empty());
    }
}
