//! Policy parameters, by oVirt's names, with oVirt's value rules and defaults.
//!
//! A policy sets some of them ([`PolicyParams`] fields are `None` when unset); the accessors
//! give the effective value, falling back to the engine-wide default oVirt uses.

use std::fmt;

/// A policy parameter's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Param {
    /// CPU load (percent) at or over which a host is over-utilised.
    HighUtilization,
    /// CPU load (percent) under which a host is under-utilised (power saving).
    LowUtilization,
    /// Minutes a host must stay over `HighUtilization` before guests are moved off it.
    CpuOverCommitDurationMinutes,
    /// Guest count under which the busiest host is never a migration source (guest count policy).
    HighVmCount,
    /// Guest-count difference between two hosts that triggers a migration (guest count policy).
    MigrationThreshold,
    /// Guests the storage-pool manager's role counts as (guest count policy).
    SpmVmGrace,
    /// Empty hosts the power saver keeps up.
    HostsInReserve,
    /// Whether the power saver may switch hosts off and on.
    EnableAutomaticHostPowerManagement,
    /// Free memory (MiB) under which a host is over-utilised.
    MaxFreeMemoryForOverUtilized,
    /// Free memory (MiB) over which a host is under-utilised.
    MinFreeMemoryForUnderUtilized,
    /// Spare hosts for oVirt's hosted engine; carried for the API, Drover has no hosted engine.
    HeSparesCount,
    /// vCPU-to-CPU ratio over which a host is penalised by the CPU weight (0: no limit).
    VcpuToPhysicalCpuRatio,
}

impl Param {
    /// Every parameter.
    pub const ALL: &'static [Param] = &[
        Param::HighUtilization,
        Param::LowUtilization,
        Param::CpuOverCommitDurationMinutes,
        Param::HighVmCount,
        Param::MigrationThreshold,
        Param::SpmVmGrace,
        Param::HostsInReserve,
        Param::EnableAutomaticHostPowerManagement,
        Param::MaxFreeMemoryForOverUtilized,
        Param::MinFreeMemoryForUnderUtilized,
        Param::HeSparesCount,
        Param::VcpuToPhysicalCpuRatio,
    ];

    /// The name oVirt gives it (a scheduling policy's property name).
    pub fn name(self) -> &'static str {
        match self {
            Param::HighUtilization => "HighUtilization",
            Param::LowUtilization => "LowUtilization",
            Param::CpuOverCommitDurationMinutes => "CpuOverCommitDurationMinutes",
            Param::HighVmCount => "HighVmCount",
            Param::MigrationThreshold => "MigrationThreshold",
            Param::SpmVmGrace => "SpmVmGrace",
            Param::HostsInReserve => "HostsInReserve",
            Param::EnableAutomaticHostPowerManagement => "EnableAutomaticHostPowerManagement",
            Param::MaxFreeMemoryForOverUtilized => "MaxFreeMemoryForOverUtilized",
            Param::MinFreeMemoryForUnderUtilized => "MinFreeMemoryForUnderUtilized",
            Param::HeSparesCount => "HeSparesCount",
            Param::VcpuToPhysicalCpuRatio => "VCpuToPhysicalCpuRatio",
        }
    }

    /// The parameter with this name.
    pub fn from_name(name: &str) -> Option<Param> {
        Param::ALL.iter().copied().find(|p| p.name() == name)
    }
}

impl fmt::Display for Param {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A parameter that could not be set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParamError {
    /// No parameter has this name.
    Unknown(String),
    /// The value is out of the parameter's range or not a value of its type.
    Invalid {
        /// The parameter.
        param: Param,
        /// The value given.
        value: String,
    },
}

impl fmt::Display for ParamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParamError::Unknown(name) => write!(f, "unknown scheduling policy parameter {name}"),
            ParamError::Invalid { param, value } => {
                write!(
                    f,
                    "invalid value {value:?} for scheduling policy parameter {param}"
                )
            }
        }
    }
}

impl std::error::Error for ParamError {}

/// The parameters a policy sets; `None` means the default applies.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicyParams {
    /// `HighUtilization`, percent, 50–99; default 75.
    pub high_utilization: Option<u32>,
    /// `LowUtilization`, percent, 0–49; default 20.
    pub low_utilization: Option<u32>,
    /// `CpuOverCommitDurationMinutes`, at least 1; default 2.
    pub cpu_over_commit_duration_minutes: Option<u32>,
    /// `HighVmCount`; default 10.
    pub high_vm_count: Option<u32>,
    /// `MigrationThreshold`, at least 2; default 5.
    pub migration_threshold: Option<u32>,
    /// `SpmVmGrace`; default 5.
    pub spm_vm_grace: Option<u32>,
    /// `HostsInReserve`; default 0.
    pub hosts_in_reserve: Option<u32>,
    /// `EnableAutomaticHostPowerManagement`; default false.
    pub enable_automatic_host_power_management: Option<bool>,
    /// `MaxFreeMemoryForOverUtilized`, MiB, at least 1; unset: memory never over-utilises.
    pub max_free_memory_for_over_utilized: Option<u64>,
    /// `MinFreeMemoryForUnderUtilized`, MiB, at least 1; unset: memory never under-utilises.
    pub min_free_memory_for_under_utilized: Option<u64>,
    /// `HeSparesCount`; carried only.
    pub he_spares_count: Option<u32>,
    /// `VCpuToPhysicalCpuRatio` in hundredths (150 is 1.5), 0–299; default 0 (no limit).
    pub vcpu_to_physical_cpu_ratio_centi: Option<u32>,
}

/// Load a vCPU of a VM with no measured load is assumed to add, percent (oVirt's
/// `VcpuConsumptionPercentage`).
pub const VCPU_CONSUMPTION_PERCENT: u32 = 10;

/// Share of `HighUtilization` (percent) under which a host may receive guests from an
/// over-utilised one (oVirt's `UtilizationThresholdInPercent`).
pub const UTILIZATION_THRESHOLD_PERCENT: u32 = 80;

impl PolicyParams {
    /// Effective `HighUtilization`.
    pub fn high_utilization(&self) -> u32 {
        self.high_utilization.unwrap_or(75)
    }

    /// Effective `LowUtilization`.
    pub fn low_utilization(&self) -> u32 {
        self.low_utilization.unwrap_or(20)
    }

    /// Effective `CpuOverCommitDurationMinutes`, in seconds.
    pub fn cpu_over_commit_duration_secs(&self) -> u64 {
        u64::from(self.cpu_over_commit_duration_minutes.unwrap_or(2)) * 60
    }

    /// Effective `HighVmCount`.
    pub fn high_vm_count(&self) -> u32 {
        self.high_vm_count.unwrap_or(10)
    }

    /// Effective `MigrationThreshold`.
    pub fn migration_threshold(&self) -> u32 {
        self.migration_threshold.unwrap_or(5)
    }

    /// Effective `SpmVmGrace`.
    pub fn spm_vm_grace(&self) -> u32 {
        self.spm_vm_grace.unwrap_or(5)
    }

    /// Effective `HostsInReserve`.
    pub fn hosts_in_reserve(&self) -> u32 {
        self.hosts_in_reserve.unwrap_or(0)
    }

    /// Effective `EnableAutomaticHostPowerManagement`.
    pub fn automatic_power_management(&self) -> bool {
        self.enable_automatic_host_power_management.unwrap_or(false)
    }

    /// Effective `VCpuToPhysicalCpuRatio`, hundredths.
    pub fn vcpu_ratio_centi(&self) -> u32 {
        self.vcpu_to_physical_cpu_ratio_centi.unwrap_or(0)
    }

    /// CPU load under which a host may receive guests moved off an over-utilised one.
    pub fn destination_utilization(&self) -> u32 {
        let high = self.high_utilization();
        (UTILIZATION_THRESHOLD_PERCENT * high / 100)
            .min(high.saturating_sub(VCPU_CONSUMPTION_PERCENT))
    }

    /// The parameters that are set, by oVirt's names, in [`Param::ALL`] order.
    pub fn properties(&self) -> Vec<(Param, String)> {
        Param::ALL
            .iter()
            .filter_map(|&p| self.get(p).map(|v| (p, v)))
            .collect()
    }

    /// The value of `param` as text, if it is set.
    pub fn get(&self, param: Param) -> Option<String> {
        match param {
            Param::HighUtilization => self.high_utilization.map(|v| v.to_string()),
            Param::LowUtilization => self.low_utilization.map(|v| v.to_string()),
            Param::CpuOverCommitDurationMinutes => {
                self.cpu_over_commit_duration_minutes.map(|v| v.to_string())
            }
            Param::HighVmCount => self.high_vm_count.map(|v| v.to_string()),
            Param::MigrationThreshold => self.migration_threshold.map(|v| v.to_string()),
            Param::SpmVmGrace => self.spm_vm_grace.map(|v| v.to_string()),
            Param::HostsInReserve => self.hosts_in_reserve.map(|v| v.to_string()),
            Param::EnableAutomaticHostPowerManagement => self
                .enable_automatic_host_power_management
                .map(|v| v.to_string()),
            Param::MaxFreeMemoryForOverUtilized => self
                .max_free_memory_for_over_utilized
                .map(|v| v.to_string()),
            Param::MinFreeMemoryForUnderUtilized => self
                .min_free_memory_for_under_utilized
                .map(|v| v.to_string()),
            Param::HeSparesCount => self.he_spares_count.map(|v| v.to_string()),
            Param::VcpuToPhysicalCpuRatio => self.vcpu_to_physical_cpu_ratio_centi.map(|c| {
                if c % 100 == 0 {
                    (c / 100).to_string()
                } else {
                    format!("{}.{:02}", c / 100, c % 100)
                }
            }),
        }
    }

    /// Sets a parameter from its oVirt name and text value, checking oVirt's value rules.
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), ParamError> {
        let param = Param::from_name(name).ok_or_else(|| ParamError::Unknown(name.to_owned()))?;
        let invalid = || ParamError::Invalid {
            param,
            value: value.to_owned(),
        };
        let int = |lo: u64, hi: u64| -> Result<u64, ParamError> {
            let digits_only = !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit());
            let leading_zero = value.len() > 1 && value.starts_with('0');
            match value.parse::<u64>() {
                Ok(v) if digits_only && !leading_zero && (lo..=hi).contains(&v) => Ok(v),
                _ => Err(invalid()),
            }
        };
        let small = |lo: u64, hi: u64| -> Result<u32, ParamError> {
            int(lo, hi).and_then(|v| u32::try_from(v).map_err(|_| invalid()))
        };
        match param {
            Param::HighUtilization => self.high_utilization = Some(small(50, 99)?),
            Param::LowUtilization => self.low_utilization = Some(small(0, 49)?),
            Param::CpuOverCommitDurationMinutes => {
                self.cpu_over_commit_duration_minutes = Some(small(1, u64::from(u32::MAX))?)
            }
            Param::HighVmCount => self.high_vm_count = Some(small(0, u64::from(u32::MAX))?),
            Param::MigrationThreshold => {
                self.migration_threshold = Some(small(2, u64::from(u32::MAX))?)
            }
            Param::SpmVmGrace => self.spm_vm_grace = Some(small(0, u64::from(u32::MAX))?),
            Param::HostsInReserve => self.hosts_in_reserve = Some(small(0, u64::from(u32::MAX))?),
            Param::EnableAutomaticHostPowerManagement => {
                self.enable_automatic_host_power_management = Some(match value {
                    "true" => true,
                    "false" => false,
                    _ => return Err(invalid()),
                })
            }
            Param::MaxFreeMemoryForOverUtilized => {
                self.max_free_memory_for_over_utilized = Some(int(1, u64::MAX)?)
            }
            Param::MinFreeMemoryForUnderUtilized => {
                self.min_free_memory_for_under_utilized = Some(int(1, u64::MAX)?)
            }
            Param::HeSparesCount => self.he_spares_count = Some(small(0, u64::from(u32::MAX))?),
            Param::VcpuToPhysicalCpuRatio => {
                self.vcpu_to_physical_cpu_ratio_centi =
                    Some(parse_ratio(value).ok_or_else(invalid)?)
            }
        }
        Ok(())
    }
}

/// `0`–`2` with optional decimals, in hundredths (further decimals are dropped).
fn parse_ratio(value: &str) -> Option<u32> {
    let (whole, frac) = match value.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (value, None),
    };
    let whole = match whole.as_bytes() {
        [d @ b'0'..=b'2'] => u32::from(d - b'0'),
        _ => return None,
    };
    let centi = match frac {
        None => 0,
        Some(f) if !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()) => {
            let mut digits = f.bytes().map(|b| u32::from(b - b'0'));
            digits.next().unwrap_or(0) * 10 + digits.next().unwrap_or(0)
        }
        Some(_) => return None,
    };
    Some(whole * 100 + centi)
}
