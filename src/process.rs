//! The exporter's own process metrics, read from `/proc/self` at scrape time, with the exact
//! names and meanings of client_golang's process collector (`process_cpu_seconds_total`,
//! `process_open_fds`, `process_max_fds`, `process_virtual_memory_bytes`,
//! `process_resident_memory_bytes`, `process_start_time_seconds`), so existing dashboards work.
//!
//! It must never fail a scrape: a file that cannot be read or parsed drops only the families that
//! depend on it (logged at debug level). On platforms without `/proc` it returns nothing.

use crate::metric::MetricFamily;
#[cfg(target_os = "linux")]
use crate::metric::MetricType;

/// The exporter's own process metrics, as far as they could be read (possibly none).
pub fn process_families() -> Vec<MetricFamily> {
    #[cfg(target_os = "linux")]
    {
        linux::process_families()
    }
    #[cfg(not(target_os = "linux"))]
    {
        Vec::new()
    }
}

#[cfg(target_os = "linux")]
mod linux {
    use std::fs;

    use super::{MetricFamily, MetricType};

    /// Clock ticks per second of the times in `/proc/<pid>/stat`. `USER_HZ` is 100 on every Linux
    /// architecture Prometheus supports; client_golang's procfs assumes the same.
    const USER_HZ: f64 = 100.0;

    /// Why one of the `/proc` files could not be used.
    #[derive(Debug, thiserror::Error)]
    pub(super) enum ProcReadError {
        /// The file or directory could not be read.
        #[error("cannot read {path}: {source}")]
        Read {
            /// The path that failed.
            path: &'static str,
            /// The underlying I/O error.
            source: std::io::Error,
        },
        /// The file was read but did not contain what the kernel documents.
        #[error("unexpected content in {path}: {what}")]
        Parse {
            /// The file that did not parse.
            path: &'static str,
            /// What was missing or malformed.
            what: &'static str,
        },
    }

    /// The fields of `/proc/self/stat` we export (times in clock ticks).
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(super) struct ProcessStat {
        /// User-mode CPU time, in ticks.
        pub(super) user_ticks: u64,
        /// Kernel-mode CPU time, in ticks.
        pub(super) system_ticks: u64,
        /// Start time after system boot, in ticks.
        pub(super) start_ticks: u64,
        /// Virtual memory size, in bytes.
        pub(super) virtual_memory_bytes: u64,
    }

    pub(super) fn process_families() -> Vec<MetricFamily> {
        let mut families = Vec::with_capacity(6);
        let stat = log_failure(read_stat());
        if let Some(stat) = stat {
            let mut cpu = MetricFamily::new(
                "process_cpu_seconds",
                "Total user and system CPU time spent in seconds",
                MetricType::Counter,
            )
            .with_unit("seconds");
            cpu.push(
                Vec::new(),
                (stat.user_ticks + stat.system_ticks) as f64 / USER_HZ,
            );
            families.push(cpu);
        }
        if let Some(open_fds) = log_failure(count_open_fds()) {
            families.push(gauge(
                "process_open_fds",
                "Number of open file descriptors",
                None,
                open_fds as f64,
            ));
        }
        if let Some(max_fds) = log_failure(read_max_open_files()) {
            families.push(gauge(
                "process_max_fds",
                "Maximum number of open file descriptors",
                None,
                max_fds,
            ));
        }
        if let Some(stat) = stat {
            families.push(gauge(
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes",
                Some("bytes"),
                stat.virtual_memory_bytes as f64,
            ));
        }
        if let Some(resident) = log_failure(read_resident_memory_bytes()) {
            families.push(gauge(
                "process_resident_memory_bytes",
                "Resident memory size in bytes",
                Some("bytes"),
                resident as f64,
            ));
        }
        if let Some(stat) = stat
            && let Some(boot_time) = log_failure(read_boot_time_seconds())
        {
            families.push(gauge(
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds",
                Some("seconds"),
                boot_time as f64 + stat.start_ticks as f64 / USER_HZ,
            ));
        }
        families
    }

    fn gauge(
        name: &'static str,
        help: &'static str,
        unit: Option<&'static str>,
        value: f64,
    ) -> MetricFamily {
        let mut family = MetricFamily::new(name, help, MetricType::Gauge);
        family.unit = unit;
        family.push(Vec::new(), value);
        family
    }

    fn log_failure<T>(result: Result<T, ProcReadError>) -> Option<T> {
        result
            .inspect_err(|error| tracing::debug!(%error, "process metric unavailable"))
            .ok()
    }

    fn read(path: &'static str) -> Result<String, ProcReadError> {
        fs::read_to_string(path).map_err(|source| ProcReadError::Read { path, source })
    }

    fn read_stat() -> Result<ProcessStat, ProcReadError> {
        parse_stat(&read("/proc/self/stat")?)
    }

    /// Parses `/proc/<pid>/stat`. The command name (field 2) is in parentheses and may contain
    /// spaces and `)`, so fields are counted from the last `)`.
    pub(super) fn parse_stat(content: &str) -> Result<ProcessStat, ProcReadError> {
        const PATH: &str = "/proc/self/stat";
        let after_command = content
            .rfind(')')
            .map(|index| &content[index + 1..])
            .ok_or(ProcReadError::Parse {
                path: PATH,
                what: "no closing parenthesis after the command name",
            })?;
        // Fields after the command start at field 3 (state); field N is at index N - 3.
        let fields: Vec<&str> = after_command.split_ascii_whitespace().collect();
        let field = |number: usize, what: &'static str| {
            fields
                .get(number - 3)
                .and_then(|field| field.parse::<u64>().ok())
                .ok_or(ProcReadError::Parse { path: PATH, what })
        };
        Ok(ProcessStat {
            user_ticks: field(14, "utime (field 14)")?,
            system_ticks: field(15, "stime (field 15)")?,
            start_ticks: field(22, "starttime (field 22)")?,
            virtual_memory_bytes: field(23, "vsize (field 23)")?,
        })
    }

    fn count_open_fds() -> Result<usize, ProcReadError> {
        const PATH: &str = "/proc/self/fd";
        let entries =
            fs::read_dir(PATH).map_err(|source| ProcReadError::Read { path: PATH, source })?;
        Ok(entries.filter(Result::is_ok).count())
    }

    fn read_max_open_files() -> Result<f64, ProcReadError> {
        parse_max_open_files(&read("/proc/self/limits")?)
    }

    /// The soft limit of `Max open files` in `/proc/<pid>/limits`; `unlimited` becomes
    /// 2^64 - 1, as client_golang's procfs reports it.
    pub(super) fn parse_max_open_files(content: &str) -> Result<f64, ProcReadError> {
        let malformed = ProcReadError::Parse {
            path: "/proc/self/limits",
            what: "no parsable \"Max open files\" soft limit",
        };
        let Some(soft_limit) = content
            .lines()
            .find_map(|line| line.strip_prefix("Max open files"))
            .and_then(|rest| rest.split_ascii_whitespace().next())
        else {
            return Err(malformed);
        };
        if soft_limit == "unlimited" {
            return Ok(u64::MAX as f64);
        }
        soft_limit
            .parse::<u64>()
            .map(|limit| limit as f64)
            .map_err(|_| malformed)
    }

    fn read_resident_memory_bytes() -> Result<u64, ProcReadError> {
        parse_resident_memory_bytes(&read("/proc/self/status")?)
    }

    /// `VmRSS` from `/proc/<pid>/status` (in kB there), in bytes. Equals client_golang's
    /// `rss pages × page size` from `stat` without needing the page size.
    pub(super) fn parse_resident_memory_bytes(content: &str) -> Result<u64, ProcReadError> {
        content
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.trim().strip_suffix("kB"))
            .and_then(|kilobytes| kilobytes.trim().parse::<u64>().ok())
            .map(|kilobytes| kilobytes * 1024)
            .ok_or(ProcReadError::Parse {
                path: "/proc/self/status",
                what: "no parsable \"VmRSS: <n> kB\" line",
            })
    }

    fn read_boot_time_seconds() -> Result<u64, ProcReadError> {
        parse_boot_time_seconds(&read("/proc/stat")?)
    }

    /// `btime` from `/proc/stat`: the boot time in seconds since the Unix epoch.
    pub(super) fn parse_boot_time_seconds(content: &str) -> Result<u64, ProcReadError> {
        content
            .lines()
            .find_map(|line| line.strip_prefix("btime "))
            .and_then(|seconds| seconds.trim().parse::<u64>().ok())
            .ok_or(ProcReadError::Parse {
                path: "/proc/stat",
                what: "no parsable \"btime\" line",
            })
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use std::time::{SystemTime, UNIX_EPOCH};

    use super::linux::{
        ProcessStat, parse_boot_time_seconds, parse_max_open_files, parse_resident_memory_bytes,
        parse_stat,
    };
    use super::*;

    fn value_of(families: &[MetricFamily], name: &str) -> f64 {
        let family = families
            .iter()
            .find(|family| family.name == name)
            .unwrap_or_else(|| panic!("family {name} missing from {families:?}"));
        assert_eq!(family.samples.len(), 1, "{name} has one sample");
        family.samples[0].value
    }

    #[test]
    fn all_six_families_are_read_on_linux_with_client_golang_names() {
        let families = process_families();
        let names: Vec<&str> = families.iter().map(|family| family.name).collect();
        assert_eq!(
            names,
            [
                "process_cpu_seconds",
                "process_open_fds",
                "process_max_fds",
                "process_virtual_memory_bytes",
                "process_resident_memory_bytes",
                "process_start_time_seconds",
            ]
        );
        assert_eq!(families[0].kind, MetricType::Counter);
    }

    #[test]
    fn process_values_are_plausible() {
        let families = process_families();
        let resident = value_of(&families, "process_resident_memory_bytes");
        let virtual_memory = value_of(&families, "process_virtual_memory_bytes");
        assert!(resident > 0.0, "RSS {resident}");
        assert!(
            virtual_memory >= resident,
            "virtual {virtual_memory} < RSS {resident}"
        );
        let open_fds = value_of(&families, "process_open_fds");
        assert!(open_fds >= 3.0, "open fds {open_fds}");
        assert!(value_of(&families, "process_max_fds") >= open_fds);
        assert!(value_of(&families, "process_cpu_seconds") >= 0.0);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("the clock is after 1970")
            .as_secs_f64();
        let start = value_of(&families, "process_start_time_seconds");
        // Tick rounding and btime's whole seconds can put the start up to a second "in the future".
        assert!(start <= now + 1.0, "start {start} after now {now}");
        assert!(
            start > now - 86_400.0,
            "start {start} more than a day before now {now}"
        );
    }

    #[test]
    fn stat_fields_are_counted_after_a_command_name_with_spaces_and_parentheses() {
        let stat = "1234 (my (odd) cmd) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 4 0 \
                    98765 123456789 500 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
        let parsed = parse_stat(stat).expect("valid stat line");
        assert_eq!(
            parsed,
            ProcessStat {
                user_ticks: 250,
                system_ticks: 75,
                start_ticks: 98765,
                virtual_memory_bytes: 123_456_789,
            }
        );
    }

    #[test]
    fn truncated_stat_is_a_parse_error_naming_the_field() {
        let error = parse_stat("1 (x) S 1 2 3").expect_err("too few fields");
        assert!(error.to_string().contains("utime (field 14)"), "{error}");
    }

    #[test]
    fn max_open_files_reads_the_soft_limit_and_maps_unlimited() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max cpu time              unlimited            unlimited            seconds   \n\
                      Max open files            1024                 524288               files     \n";
        assert_eq!(parse_max_open_files(limits).expect("valid limits"), 1024.0);
        let unlimited =
            "Max open files            unlimited            unlimited            files\n";
        assert_eq!(
            parse_max_open_files(unlimited).expect("valid limits"),
            u64::MAX as f64
        );
        assert!(parse_max_open_files("Max processes 10 10 processes\n").is_err());
    }

    #[test]
    fn resident_memory_is_vmrss_in_bytes() {
        let status = "Name:\tx\nVmSize:\t  10000 kB\nVmRSS:\t    2048 kB\n";
        assert_eq!(
            parse_resident_memory_bytes(status).expect("has VmRSS"),
            2048 * 1024
        );
        assert!(parse_resident_memory_bytes("Name:\tx\n").is_err());
    }

    #[test]
    fn boot_time_is_btime() {
        let stat = "cpu  1 2 3 4\nintr 5\nbtime 1700000000\nprocesses 42\n";
        assert_eq!(
            parse_boot_time_seconds(stat).expect("has btime"),
            1_700_000_000
        );
        assert!(parse_boot_time_seconds("cpu 1 2\n").is_err());
    }
}
