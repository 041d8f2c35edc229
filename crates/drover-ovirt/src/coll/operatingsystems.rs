//! The `operatingsystems` collection: the catalogue of guest operating system types a VM's
//! `<os><type>` names, with oVirt's own ids and names for the x86_64 types, so that clients
//! that know oVirt's catalogue find the same entries here.

use axum::http::Method;

use crate::api::{collection, entity, limit, no_such_resource, Api, Req, Resp};
use crate::fault::{ApiError, ApiResult};
use crate::node::Node;

/// One operating system type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OsInfo {
    /// oVirt's numeric id, as text.
    pub id: &'static str,
    /// The unique name a VM's `<os><type>` holds.
    pub name: &'static str,
    /// The name people read.
    pub description: &'static str,
}

const fn os(id: &'static str, name: &'static str, description: &'static str) -> OsInfo {
    OsInfo {
        id,
        name,
        description,
    }
}

/// The catalogue, in oVirt's order.
pub const CATALOGUE: &[OsInfo] = &[
    os("0", "other", "Other OS"),
    os("5", "other_linux", "Linux"),
    os("9", "rhel_3", "Red Hat Enterprise Linux 3.x"),
    os("15", "rhel_3x64", "Red Hat Enterprise Linux 3.x x64"),
    os("8", "rhel_4", "Red Hat Enterprise Linux 4.x"),
    os("14", "rhel_4x64", "Red Hat Enterprise Linux 4.x x64"),
    os("7", "rhel_5", "Red Hat Enterprise Linux 5.x"),
    os("13", "rhel_5x64", "Red Hat Enterprise Linux 5.x x64"),
    os("18", "rhel_6", "Red Hat Enterprise Linux 6.x"),
    os("19", "rhel_6x64", "Red Hat Enterprise Linux 6.x x64"),
    os("24", "rhel_7x64", "Red Hat Enterprise Linux 7.x x64"),
    os("30", "rhel_8x64", "Red Hat Enterprise Linux 8.x x64"),
    os("34", "rhel_9x64", "Red Hat Enterprise Linux 9.x x64"),
    os("39", "rhel_10x64", "Red Hat Enterprise Linux 10.x x64"),
    os("35", "rhcos_x64", "Red Hat Enterprise Linux CoreOS"),
    os("28", "rhel_atomic7x64", "Red Hat Atomic 7.x x64"),
    os("33", "other_linux_kernel_4", "Other Linux (kernel 4.x)"),
    os("1", "windows_xp", "Windows XP"),
    os("3", "windows_2003", "Windows 2003"),
    os("4", "windows_2008", "Windows 2008"),
    os("10", "windows_2003x64", "Windows 2003 x64"),
    os("11", "windows_7", "Windows 7"),
    os("12", "windows_7x64", "Windows 7 x64"),
    os("16", "windows_2008x64", "Windows 2008 x64"),
    os("17", "windows_2008R2x64", "Windows 2008 R2 x64"),
    os("20", "windows_8", "Windows 8"),
    os("21", "windows_8x64", "Windows 8 x64"),
    os("23", "windows_2012x64", "Windows 2012 x64"),
    os("25", "windows_2012R2x64", "Windows 2012R2 x64"),
    os("26", "windows_10", "Windows 10"),
    os("27", "windows_10x64", "Windows 10 x64"),
    os("29", "windows_2016x64", "Windows 2016 x64"),
    os("31", "windows_2019x64", "Windows 2019 x64"),
    os("36", "windows_11", "Windows 11"),
    os("37", "windows_2022", "Windows 2022"),
    os("38", "windows_2025", "Windows 2025"),
    os("1193", "sles_11", "SUSE Linux Enterprise Server 11+"),
    os("1252", "ubuntu_12_04", "Ubuntu Precise Pangolin LTS"),
    os("1253", "ubuntu_12_10", "Ubuntu Quantal Quetzal"),
    os("1254", "ubuntu_13_04", "Ubuntu Raring Ringtails"),
    os("1255", "ubuntu_13_10", "Ubuntu Saucy Salamander"),
    os("1256", "ubuntu_14_04", "Ubuntu Trusty Tahr LTS+"),
    os("1257", "ubuntu_18_04", "Ubuntu Bionic Beaver LTS+"),
    os("1300", "debian_7", "Debian 7+"),
    os("1301", "debian_9", "Debian 9+"),
    os("1500", "freebsd", "FreeBSD 9.2"),
    os("1501", "freebsdx64", "FreeBSD 9.2 x64"),
];

/// The element of the list: the API model's plural of `operating_system`, which is what
/// `ovirtsdk4` reads.
const LIST_ELEMENT: &str = "operation_systems";

/// Handles `/operatingsystems/...`.
pub async fn handle(_api: &Api, req: &Req, rest: &[&str]) -> ApiResult<Resp> {
    match (rest, &req.method) {
        ([], &Method::GET) => Resp::ok(collection(
            LIST_ELEMENT,
            limit(CATALOGUE.iter().map(render).collect(), req.max()?),
        )),
        ([id], &Method::GET) => CATALOGUE
            .iter()
            .find(|o| o.id == *id)
            .map(render)
            .ok_or_else(|| ApiError::not_found("OperatingSystemInfo", id))
            .and_then(Resp::ok),
        _ => Err(no_such_resource(req, "/operatingsystems", rest)),
    }
}

/// An operating system type as oVirt shows it.
pub fn render(os: &OsInfo) -> Node {
    entity("operating_system", "operatingsystems", os.id)
        .text("name", os.name)
        .text("description", os.description)
        .text("architecture", "x86_64")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_names_are_unique() {
        for (i, a) in CATALOGUE.iter().enumerate() {
            for b in &CATALOGUE[i + 1..] {
                assert_ne!(a.id, b.id);
                assert!(!a.name.eq_ignore_ascii_case(b.name));
            }
        }
    }

    #[test]
    fn the_types_of_the_api_model_are_there() {
        for name in [
            "other",
            "other_linux",
            "rhel_6x64",
            "windows_2012x64",
            "windows_xp",
        ] {
            assert!(CATALOGUE.iter().any(|o| o.name == name), "{name}");
        }
    }
}
