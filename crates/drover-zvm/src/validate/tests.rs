//! Reference-captured cases: each request was sent to the reference server
//! (`shared/tools/zvm-reference`), and the `errmsg` of its 400 answer recorded (`None`: it
//! passed validation).

use serde_json::Value;

use super::{body, path_fcp_id, path_userid, query, Query, Schema};

/// Request bodies. `EditFcpTemplate` bodies hold the path's template id, as the reference puts
/// it there before validating.
const BODIES: &[(Schema, &str, Option<&str>)] = &[
    (Schema::GuestCreate, r#"{"guest": {"userid": "USER1", "vcpus": 1, "memory": 1024}}"#, None),
    (Schema::GuestCreate, r#"{"guest": {"userid": "USER1", "vcpus": 1, "memory": 1024, "disk_list": [{"size": "3g", "is_boot_disk": true, "disk_pool": "ECKD:pool1"}, {"size": "1g", "format": "ext4"}], "user_profile": "OSDFLT", "max_cpu": 8, "max_mem": "16G"}}"#, None),
    (Schema::GuestCreate, r#"{"guest": {"userid": "TOOLONGUSERID", "vcpus": 1, "memory": 1024}}"#, Some("ValidationError: Validation error: Invalid input for field/attribute userid. Value: TOOLONGUSERID. 'TOOLONGUSERID' is too long")),
    (Schema::GuestCreate, r#"{"guest": {"userid": "US-ER", "vcpus": 1, "memory": 1024}}"#, Some(r#"ValidationError: Validation error: Invalid input for field/attribute userid. Value: US-ER. 'US-ER' does not match '^(\\w{,8})$'"#)),
    (Schema::GuestCreate, r#"{"guest": {"userid": "", "vcpus": 1, "memory": 1024}}"#, Some("ValidationError: Validation error: Invalid input for field/attribute userid. Value: . '' should be non-empty")),
    (Schema::GuestCreate, r#"{"guest": {"userid": 5, "vcpus": 1, "memory": 1024}}"#, Some("ValidationError: Validation error: Invalid input for field/attribute userid. Value: 5. 5 is not of type 'string'")),
    (Schema::GuestCreate, r#"{"guest": {"userid": "AB'C", "vcpus": 1, "memory": 1024}}"#, Some(r#"ValidationError: Validation error: Invalid input for field/attribute userid. Value: AB'C. "AB'C" does not match '^(\\w{,8})$'"#)),
    (Schema::GuestCreate, r#"{"guest": {"userid": "ABC\n", "vcpus": 1, "memory": 1024}}"#, None),
    (Schema::GuestCreate, r#"{"guest": {"userid": "USER1", "vcpus": 0, "memory": 1024}}"#, Some("ValidationError: Validation error: Invalid input for field/attribute vcpus. Value: 0. 0 is less than the minimum of 1")),
    (Schema::GuestCreate, r#"{"guest": {"userid": "USER1", "vcpus": "abc", "memory": 1024}}"#, Some("ValidationError: Validation error: Invalid input for field/attribute vcpus. Value: abc. 'abc' does not match '^[0-9]*$'")),
    (Schema::GuestCreate, r#"{"guest": {"userid": "USER1", "vcpus": "", "memory": "0"}}"#, None),
    (Schema::GuestCreate, r#"{"guest": {"userid": "USER1", "vcpus": true, "memory": 1024}}"#, Some("ValidationError: Validation error: Invalid input for field/attribute vcpus. Value: True. True is not of type 'integer', 'string'")),
    (Schema::GuestCreate, r#"{"guest": {"userid": "USER1", "vcpus": 1.0, "memory": 1024}}"#, Some("ValidationError: Validation error: Invalid input for field/attribute vcpus. Value: 1.0. 1.0 is not of type 'integer', 'string'")),
    (Schema::GuestCreate, r#"{"guest": {"userid": "USER1", "vcpus": 2, "memory": 1e16}}"#, Some("ValidationError: Validation error: Invalid input for field/attribute memory. Value: 1e+16. 1e+16 is not of type 'integer', 'string'")),
    (Schema::GuestCreate, r#"{"guest": {"userid": "USER1", "vcpus": null, "memory": 1024}}"#, Some("ValidationError: Validation error: Invalid input for field/attribute vcpus. Value: None. None is not of type 'integer', 'string'")),
    (Schema::GuestCreate, r#"{"guest": {"userid": "USER1", "memory": 1024}}"#, Some("ValidationError: Validation error: Invalid input for field/attribute guest. Value: {'userid': 'USER1', 'memory': 1024}. 'vcpus' is a required property")),
    (Schema::GuestCreate, r#"{"guest": {"userid": "USER1", "vcpus": 1, "memory": 1024, "foo": 1}}"#, Some("ValidationError: Validation error: Invalid input for field/attribute guest. Value: {'userid': 'USER1', 'vcpus': 1, 'memory': 1024, 'foo': 1}. Additional properties are not allowed ('foo' was unexpected)")),
    (Schema::GuestCreate, r#"{"guest": {"userid": "USER1", "vcpus": 1, "memory": 1024, "zeta": 1, "alpha": {"x": [true, null]}}}"#, Some("ValidationError: Validation error: Invalid input for field/attribute guest. Value: {'userid': 'USER1', 'vcpus': 1, 'memory': 1024, 'zeta': 1, 'alpha': {'x': [True, None]}}. Additional properties are not allowed ('alpha', 'zeta' were unexpected)")),
    (Schema::GuestCreate, r#"{"guest": {"userid": "USER1", "vcpus": 1, "memory": 1024}, "additionalProperties": {"a": 1}}"#, Some("ValidationError: Validation error: False schema does not allow {'a': 1}")),
    (Schema::GuestCreate, r#"{"guest": {"userid": "USER1", "vcpus": 1, "memory": 1024}, "extra": 1}"#, Some("ValidationError: Validation error: Additional properties are not allowed ('extra' was unexpected)")),
    (Schema::GuestCreate, "{}", Some("ValidationError: Validation error: 'guest' is a required property")),
    (Schema::GuestCreate, "[]", Some("ValidationError: Validation error: [] is not of type 'object'")),
    (Schema::GuestCreate, r#"{"guest": "USER1"}"#, Some("ValidationError: Validation error: Invalid input for field/attribute guest. Value: USER1. 'USER1' is not of type 'object'")),
    (Schema::GuestCreate, r#"{"guest": {"userid": "USER1", "vcpus": 1, "memory": 1024, "max_cpu": 65}}"#, Some("ValidationError: Validation error: Invalid input for field/attribute max_cpu. Value: 65. 65 is greater than the maximum of 64")),
    (Schema::GuestCreate, r#"{"guest": {"userid": "USER1", "vcpus": 1, "memory": 1024, "max_cpu": 0}}"#, Some("ValidationError: Validation error: Invalid input for field/attribute max_cpu. Value: 0. 0 is less than the minimum of 1")),
    (Schema::GuestCreate, r#"{"guest": {"userid": "USER1", "vcpus": 1, "memory": 1024, "max_cpu": "8"}}"#, Some("ValidationError: Validation error: Invalid input for field/attribute max_cpu. Value: 8. '8' is not of type 'integer'")),
    (Schema::GuestCreate, r#"{"guest": {"userid": "USER1", "vcpus": 1, "memory": 1024, "max_cpu": 10000000000000000000}}"#, Some("ValidationError: Validation error: Invalid input for field/attribute max_cpu. Value: 10000000000000000000. 10000000000000000000 is greater than the maximum of 64")),
    (Schema::GuestCreate, r#"{"guest": {"userid": "USER1", "vcpus": 1, "memory": 1024, "max_cpu": 1E2}}"#, Some("ValidationError: Validation error: Invalid input for field/attribute max_cpu. Value: 100.0. 100.0 is not of type 'integer'")),
    (Schema::GuestCreate, r#"{"guest": {"userid": "USER1", "vcpus": 1, "memory": 1024, "max_cpu": -0.0}}"#, Some("ValidationError: Validation error: Invalid input for field/attribute max_cpu. Value: -0.0. -0.0 is not of type 'integer'")),
    (Schema::GuestCreate, r#"{"guest": {"userid": "USER1", "vcpus": 1, "memory": 1024, "userid": "TOOLONGUSERID"}}"#, Some("ValidationError: Validation error: Invalid input for field/attribute userid. Value: TOOLONGUSERID. 'TOOLONGUSERID' is too long")),
    (Schema::GuestCreate, r#"{"guest": {"userid": "USER1", "vcpus": 1, "memory": 1024, "max_mem": "10T"}}"#, Some("ValidationError: Validation error: Invalid input for field/attribute max_mem. Value: 10T. '10T' does not match '^[1-9][0-9]{0,3}[m|M|g|G]$'")),
    (Schema::GuestCreate, r#"{"guest": {"userid": "USER1", "vcpus": 1, "memory": 1024, "max_mem": "1|"}}"#, None),
    (Schema::GuestCreate, r#"{"guest": {"userid": "USER1", "vcpus": 1, "memory": 1024, "user_profile": "TOOLONGPROFILE"}}"#, Some("ValidationError: Validation error: Invalid input for field/attribute user_profile. Value: TOOLONGPROFILE. 'TOOLONGPROFILE' is not valid under any of the given schemas")),
    (Schema::GuestCreate, r#"{"guest": {"userid": "USER1", "vcpus": 1, "memory": 1024, "user_profile": null}}"#, None),
    (Schema::GuestCreate, r#"{"guest": {"userid": "USER1", "vcpus": 1, "memory": 1024, "disk_list": [{"format": "ext4"}]}}"#, Some("ValidationError: Validation error: Invalid input for field/attribute 0. Value: {'format': 'ext4'}. 'size' is a required property")),
    (Schema::GuestCreate, r#"{"guest": {"userid": "USER1", "vcpus": 1, "memory": 1024, "disk_list": [{"size": "1g", "disk_pool": "ECKD"}]}}"#, Some(r#"ValidationError: Validation error: Invalid input for field/attribute disk_pool. Value: ECKD. 'ECKD' does not match '^\\w+:\\w+$'"#)),
    (Schema::GuestCreate, r#"{"guest": {"userid": "USER1", "vcpus": 1, "memory": 1024, "disk_list": [{"size": "1g", "format": "btrfs"}]}}"#, Some("ValidationError: Validation error: Invalid input for field/attribute format. Value: btrfs. 'btrfs' is not one of ['ext2', 'ext3', 'ext4', 'xfs', 'swap', 'none']")),
    (Schema::GuestCreate, r#"{"guest": {"userid": "USER1", "vcpus": 1, "memory": 1024, "disk_list": [{"size": "1g"}, {"size": 1}]}}"#, Some("ValidationError: Validation error: Invalid input for field/attribute size. Value: 1. 1 is not of type 'string'")),
    (Schema::GuestCreate, r#"{"guest": {"userid": "USER1", "vcpus": 1, "memory": 1024, "disk_list": [{"size": "1g", "is_boot_disk": "maybe"}]}}"#, Some("ValidationError: Validation error: Invalid input for field/attribute is_boot_disk. Value: maybe. 'maybe' is not one of [True, 'True', 'TRUE', 'true', '1', 'ON', 'On', 'on', 'YES', 'Yes', 'yes', False, 'False', 'FALSE', 'false', '0', 'OFF', 'Off', 'off', 'NO', 'No', 'no']")),
    (Schema::GuestCreate, r#"{"guest": {"userid": "USER1", "vcpus": 1, "memory": 1024, "disk_list": [{"size": "1g", "is_boot_disk": "yes", "vdev": "10000"}]}}"#, Some("ValidationError: Validation error: Invalid input for field/attribute vdev. Value: 10000. '10000' is too long")),
    (Schema::GuestCreate, r#"{"guest": {"userid": "USER1", "vcpus": 1, "memory": 1024, "disk_list": [{"size": "1g", "label": "x"}]}}"#, Some("ValidationError: Validation error: Invalid input for field/attribute 0. Value: {'size': '1g', 'label': 'x'}. Additional properties are not allowed ('label' was unexpected)")),
    (Schema::GuestCreate, r#"{"guest": {"userid": "USER1", "vcpus": 1, "memory": 1024, "disk_list": ["1g"]}}"#, Some("ValidationError: Validation error: Invalid input for field/attribute 0. Value: 1g. '1g' is not of type 'object'")),
    (Schema::GuestCreate, r#"{"guest": {"userid": "USER1", "vcpus": 1, "memory": 1024, "dedicate_vdevs": ["1000", "1000"]}}"#, Some("ValidationError: Validation error: Invalid input for field/attribute dedicate_vdevs. Value: ['1000', '1000']. ['1000', '1000'] has non-unique elements")),
    (Schema::GuestCreate, r#"{"guest": {"userid": "USER1", "vcpus": 1, "memory": 1024, "dedicate_vdevs": ["10000"]}}"#, Some("ValidationError: Validation error: Invalid input for field/attribute 0. Value: 10000. '10000' does not match '^[0-9a-fA-F]{,4}$'")),
    (Schema::GuestCreate, r#"{"guest": {"userid": "USER1", "vcpus": 1, "memory": 1024, "loaddev": {"portname": "", "lun": "0"}}}"#, Some("ValidationError: Validation error: Invalid input for field/attribute portname. Value: . '' should be non-empty")),
    (Schema::GuestCreate, r#"{"guest": {"userid": "USER1", "vcpus": 1, "memory": 1024, "loaddev": {"lun": "12345678901234567"}}}"#, Some("ValidationError: Validation error: Invalid input for field/attribute lun. Value: 12345678901234567. '12345678901234567' is too long")),
    (Schema::GuestCreate, r#"{"guest": {"userid": "USER1", "vcpus": 1, "memory": 1024, "comments": ["ok", 5]}}"#, Some("ValidationError: Validation error: Invalid input for field/attribute 1. Value: 5. 5 is not of type 'string'")),
    (Schema::GuestCreate, r#"{"guest": {"userid": "USER1", "vcpus": 1, "memory": 1024, "account": "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}}"#, Some("ValidationError: Validation error: Invalid input for field/attribute account. Value: xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx. 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx' is too long")),
    (Schema::GuestCreate, r#"{"guest": {"userid": "USER1", "vcpus": 1, "memory": 1024, "cshare": "1.5"}}"#, Some(r#"ValidationError: Validation error: Invalid input for field/attribute cshare. Value: 1.5. '1.5' does not match '^(\\w{,64})$'"#)),
    (Schema::GuestCreate, r#"{"guest": {"userid": "USER1", "vcpus": 1, "memory": 1024, "pcif": "0123456789"}}"#, Some("ValidationError: Validation error: Invalid input for field/attribute pcif. Value: 0123456789. '0123456789' is too long")),
    (Schema::GuestCreate, r#"{"guest": {"userid": "USER1", "vcpus": 1, "memory": 1024, "cschedule": "POOL 1"}}"#, Some(r#"ValidationError: Validation error: Invalid input for field/attribute cschedule. Value: POOL 1. 'POOL 1' does not match '^(\\w{,8})$'"#)),
    (Schema::GuestCreate, r#"{"guest": {"userid": "\u00e9\u00a0\u0001\u200b", "vcpus": 1, "memory": 1024}}"#, Some("ValidationError: Validation error: Invalid input for field/attribute userid. Value: é\u{a0}\u{1}\u{200b}. 'é\\xa0\\x01\\u200b' does not match '^(\\\\w{,8})$'")),
    (Schema::GuestCreate, r#"{"guest": {"userid": "\u00e9", "vcpus": 1, "memory": 1024, "max_mem": "\u00ad"}}"#, Some("ValidationError: Validation error: Invalid input for field/attribute max_mem. Value: \u{ad}. '\\xad' does not match '^[1-9][0-9]{0,3}[m|M|g|G]$'")),
    (Schema::Start, r#"{"action": "start", "timeout": 60}"#, None),
    (Schema::Start, r#"{"action": "start", "timeout": -1}"#, Some("ValidationError: Validation error: Invalid input for field/attribute timeout. Value: -1. -1 is less than the minimum of 0")),
    (Schema::Start, r#"{"action": "start", "timeout": "soon"}"#, Some("ValidationError: Validation error: Invalid input for field/attribute timeout. Value: soon. 'soon' does not match '^[0-9]*$'")),
    (Schema::Stop, r#"{"action": "stop", "timeout": -1}"#, Some("ValidationError: Validation error: Invalid input for field/attribute timeout. Value: -1. -1 is less than the minimum of 0")),
    (Schema::Stop, r#"{"action": "stop", "poll_interval": 1.5}"#, Some("ValidationError: Validation error: Invalid input for field/attribute poll_interval. Value: 1.5. 1.5 is not of type 'integer', 'string'")),
    (Schema::Softstop, r#"{"action": "softstop", "timeout": 300, "poll_interval": 10, "force": true}"#, Some("ValidationError: Validation error: Additional properties are not allowed ('force' was unexpected)")),
    (Schema::RegisterVm, r#"{"action": "register_vm", "meta": "{}", "net_set": "1", "port_macs": {"EF5091": "port-1"}}"#, None),
    (Schema::RegisterVm, r#"{"action": "register_vm", "meta": "{}"}"#, Some("ValidationError: Validation error: 'net_set' is a required property")),
    (Schema::RegisterVm, r#"{"action": "register_vm", "meta": {"os_version": "rhel8"}, "net_set": "1"}"#, Some("ValidationError: Validation error: Invalid input for field/attribute meta. Value: {'os_version': 'rhel8'}. {'os_version': 'rhel8'} is not of type 'string'")),
    (Schema::DeregisterVm, r#"{"action": "deregister_vm", "userid": "A B"}"#, Some(r#"ValidationError: Validation error: Invalid input for field/attribute userid. Value: A B. 'A B' does not match '^(\\w{,8})$'"#)),
    (Schema::LiveMigrateVm, r#"{"action": "live_migrate_vm", "destination": "SYS2"}"#, Some("ValidationError: Validation error: 'operation' is a required property")),
    (Schema::LiveMigrateVm, r#"{"action": "live_migrate_vm", "destination": "SYS2", "operation": "move", "parms": {"maxtotal": "300"}}"#, Some("ValidationError: Validation error: Invalid input for field/attribute maxtotal. Value: 300. '300' is not of type 'integer'")),
    (Schema::LiveMigrateVm, r#"{"action": "live_migrate_vm", "destination": "SYS2", "operation": "move", "parms": {"max_total": 300}}"#, Some("ValidationError: Validation error: Invalid input for field/attribute parms. Value: {'max_total': 300}. Additional properties are not allowed ('max_total' was unexpected)")),
    (Schema::LiveMigrateVm, r#"{"action": "live_migrate_vm", "dest_zcc_userid": "", "destination": "SYS2", "operation": "move"}"#, Some("ValidationError: Validation error: Invalid input for field/attribute dest_zcc_userid. Value: . '' is not valid under any of the given schemas")),
    (Schema::ResizeCpus, r#"{"action": "live_resize_cpus", "cpu_cnt": 65}"#, Some("ValidationError: Validation error: Invalid input for field/attribute cpu_cnt. Value: 65. 65 is greater than the maximum of 64")),
    (Schema::ResizeCpus, r#"{"action": "live_resize_cpus", "cpu_cnt": "4"}"#, Some("ValidationError: Validation error: Invalid input for field/attribute cpu_cnt. Value: 4. '4' is not of type 'integer'")),
    (Schema::ResizeMem, r#"{"action": "resize_mem", "size": "4096"}"#, Some("ValidationError: Validation error: Invalid input for field/attribute size. Value: 4096. '4096' does not match '^[1-9][0-9]{0,3}[m|M|g|G]$'")),
    (Schema::ResizeMem, r#"{"action": "resize_mem"}"#, Some("ValidationError: Validation error: 'size' is a required property")),
    (Schema::GrowRootVolume, r#"{"action": "grow_root_volume", "os_version": "windows10"}"#, Some("ValidationError: Validation error: Invalid input for field/attribute os_version. Value: windows10. 'windows10' is not valid under any of the given schemas")),
    (Schema::GrowRootVolume, r#"{"action": "grow_root_volume", "os_version": "sles15sp2"}"#, None),
    (Schema::Deploy, r#"{"action": "deploy"}"#, Some("ValidationError: Validation error: 'image' is a required property")),
    (Schema::Deploy, r#"{"action": "deploy", "image": "img1", "transportfiles": "/tmp/cfgdrive.tgz", "remotehost": "nova@192.168.1.1", "vdev": "0100", "hostname": "vm1", "skipdiskcopy": "true"}"#, None),
    (Schema::Deploy, r#"{"action": "deploy", "image": "img1", "remotehost": "nova"}"#, Some(r#"ValidationError: Validation error: Invalid input for field/attribute remotehost. Value: nova. 'nova' does not match '^[a-zA-Z0-9\\-]+\\@([0-9]{1,3}(.[0-9]{1,3}){3}$|[a-zA-Z0-9\\-]+(.[a-zA-Z0-9\\-]){1,}$)'"#)),
    (Schema::Deploy, r#"{"action": "deploy", "image": "img1", "hostname": "vm 1"}"#, Some("ValidationError: Validation error: Invalid input for field/attribute hostname. Value: vm 1. 'vm 1' is not valid under any of the given schemas")),
    (Schema::Deploy, r#"{"action": "deploy", "image": ""}"#, Some("ValidationError: Validation error: Invalid input for field/attribute image. Value: . '' should be non-empty")),
    (Schema::Capture, r#"{"action": "capture", "image": "img1", "capture_type": "somedisks"}"#, Some("ValidationError: Validation error: Invalid input for field/attribute capture_type. Value: somedisks. 'somedisks' is not one of ['rootonly', 'alldisks']")),
    (Schema::Capture, r#"{"action": "capture", "image": "img1", "compress_level": "6"}"#, Some("ValidationError: Validation error: Invalid input for field/attribute compress_level. Value: 6. '6' is not of type 'integer'")),
    (Schema::Unvalidated, r#"{"action": "reboot", "anything": [1, 2]}"#, None),
    (Schema::CreateNic, r#"{"nic": {}}"#, None),
    (Schema::CreateNic, r#"{"nic": {"vdev": "10000"}}"#, Some("ValidationError: Validation error: Invalid input for field/attribute vdev. Value: 10000. '10000' is not valid under any of the given schemas")),
    (Schema::CreateNic, r#"{"nic": {"mac_addr": "02:00:00:12:34"}}"#, Some("ValidationError: Validation error: Invalid input for field/attribute mac_addr. Value: 02:00:00:12:34. '02:00:00:12:34' does not match '^([0-9a-fA-F]{2})(:[0-9a-fA-F]{2}){5}$'")),
    (Schema::CreateNic, r#"{"nic": {"active": "sure"}}"#, Some("ValidationError: Validation error: Invalid input for field/attribute active. Value: sure. 'sure' is not one of [True, 'True', 'TRUE', 'true', '1', 'ON', 'On', 'on', 'YES', 'Yes', 'yes', False, 'False', 'FALSE', 'false', '0', 'OFF', 'Off', 'off', 'NO', 'No', 'no']")),
    (Schema::CreateNic, r#"{"nic": {"nic_id": 7}}"#, Some("ValidationError: Validation error: Invalid input for field/attribute nic_id. Value: 7. 7 is not of type 'string'")),
    (Schema::NicCoupleUncouple, r#"{"info": {"couple": true, "vswitch": "VSW1", "active": true, "vlan_id": 100}}"#, None),
    (Schema::NicCoupleUncouple, r#"{"info": {"vswitch": "VSW1"}}"#, Some("ValidationError: Validation error: Invalid input for field/attribute info. Value: {'vswitch': 'VSW1'}. 'couple' is a required property")),
    (Schema::NicCoupleUncouple, r#"{"info": {"couple": "1", "vlan_id": -2}}"#, Some("ValidationError: Validation error: Invalid input for field/attribute vlan_id. Value: -2. -2 is less than the minimum of -1")),
    (Schema::NicCoupleUncouple, r#"{"info": {"couple": 1}}"#, Some("ValidationError: Validation error: Invalid input for field/attribute couple. Value: 1. 1 is not of type 'boolean', 'string'")),
    (Schema::NicCoupleUncouple, r#"{"info": {"couple": true, "vswitch": ""}}"#, Some("ValidationError: Validation error: Invalid input for field/attribute vswitch. Value: . '' should be non-empty")),
    (Schema::CreateNetworkInterface, r#"{"interface": {"os_version": "windows10", "guest_networks": []}}"#, Some("ValidationError: Validation error: Invalid input for field/attribute os_version. Value: windows10. 'windows10' is not valid under any of the given schemas")),
    (Schema::CreateNetworkInterface, r#"{"interface": {"os_version": "rhel8", "guest_networks": [{"ip_addr": "1.2.3.4"}]}}"#, Some("ValidationError: Validation error: Invalid input for field/attribute 0. Value: {'ip_addr': '1.2.3.4'}. 'cidr' is a dependency of 'ip_addr'")),
    (Schema::CreateNetworkInterface, r#"{"interface": {"os_version": "rhel8", "guest_networks": [{"ip_addr": "1.2.3.256", "cidr": "1.2.3.0/24"}]}}"#, Some("ValidationError: Validation error: Invalid input for field/attribute ip_addr. Value: 1.2.3.256. '1.2.3.256' is not a 'ipv4'")),
    (Schema::CreateNetworkInterface, r#"{"interface": {"os_version": "ubuntu20.04", "guest_networks": [{"dns_addr": ["9.0.2.1", "09.0.2.1"]}]}}"#, Some("ValidationError: Validation error: Invalid input for field/attribute 1. Value: 09.0.2.1. '09.0.2.1' is not a 'ipv4'")),
    (Schema::CreateNetworkInterface, r#"{"interface": {"os_version": "rhcos4.6.8", "guest_networks": [{"hostname": "host_name.example-1", "nic_vdev": "1000", "osa_device": "ABCDE"}]}}"#, Some("ValidationError: Validation error: Invalid input for field/attribute osa_device. Value: ABCDE. 'ABCDE' is too long")),
    (Schema::CreateNetworkInterface, r#"{"interface": {"os_version": "rhel8"}}"#, Some("ValidationError: Validation error: Invalid input for field/attribute interface. Value: {'os_version': 'rhel8'}. 'guest_networks' is a required property")),
    (Schema::DeleteNetworkInterface, r#"{"interface": {"os_version": "rhel8", "vdev": "1000", "active": "no"}}"#, None),
    (Schema::DeleteNetworkInterface, r#"{"interface": {"os_version": "rhel8"}}"#, Some("ValidationError: Validation error: Invalid input for field/attribute interface. Value: {'os_version': 'rhel8'}. 'vdev' is a required property")),
    (Schema::CreateDisks, r#"{"disk_info": {"disk_list": [{"size": "1g", "format": "ext4", "disk_pool": "FBA:pool2"}]}}"#, None),
    (Schema::CreateDisks, r#"{"disk_info": {"disks": []}}"#, Some("ValidationError: Validation error: Invalid input for field/attribute disk_info. Value: {'disks': []}. Additional properties are not allowed ('disks' was unexpected)")),
    (Schema::CreateDisks, r#"{"disk_info": {"disk_list": [{"size": "1g", "disk_pool": "FBA:pool:2"}]}}"#, Some(r#"ValidationError: Validation error: Invalid input for field/attribute disk_pool. Value: FBA:pool:2. 'FBA:pool:2' does not match '^\\w+:\\w+$'"#)),
    (Schema::DeleteDisks, r#"{"vdev_info": {"vdev_list": []}}"#, Some("ValidationError: Validation error: Invalid input for field/attribute vdev_list. Value: []. [] should be non-empty")),
    (Schema::DeleteDisks, r#"{"vdev_info": {"vdev_list": ["0101", "0101"]}}"#, Some("ValidationError: Validation error: Invalid input for field/attribute vdev_list. Value: ['0101', '0101']. ['0101', '0101'] has non-unique elements")),
    (Schema::DeleteDisks, r#"{"vdev_info": {"vdev_list": [257]}}"#, Some("ValidationError: Validation error: Invalid input for field/attribute 0. Value: 257. 257 is not of type 'string'")),
    (Schema::ConfigMinidisks, r#"{"disk_info": {"disk_list": [{"vdev": "0101", "mntdir": "/mnt/0101"}]}}"#, Some("ValidationError: Validation error: Invalid input for field/attribute 0. Value: {'vdev': '0101', 'mntdir': '/mnt/0101'}. 'format' is a required property")),
    (Schema::ConfigMinidisks, r#"{"disk_info": {"disk_list": [{"vdev": "0101", "format": "ext3", "fs": "x"}]}}"#, Some("ValidationError: Validation error: Invalid input for field/attribute 0. Value: {'vdev': '0101', 'format': 'ext3', 'fs': 'x'}. Additional properties are not allowed ('fs' was unexpected)")),
    (Schema::ImageCreate, r#"{"image": {"image_name": "img1", "url": "file:///tmp/img1.img", "image_meta": {"os_version": "rhel8.4", "md5sum": "00000000000000000000000000000000"}}}"#, None),
    (Schema::ImageCreate, r#"{"image": {"image_name": "i", "url": "ftp://x/y", "image_meta": {"os_version": "rhel8"}}}"#, Some(r#"ValidationError: Validation error: Invalid input for field/attribute url. Value: ftp://x/y. 'ftp://x/y' does not match '^https?:/{2}|^file:/{3}\\w.+$'"#)),
    (Schema::ImageCreate, r#"{"image": {"image_name": "i", "url": "file:///x/y", "image_meta": {"os_version": "rhel8", "md5sum": "abc"}}}"#, Some("ValidationError: Validation error: Invalid input for field/attribute md5sum. Value: abc. 'abc' does not match '^[0-9a-fA-F]{32}$'")),
    (Schema::ImageCreate, r#"{"image": {"image_name": "i", "url": "file:///x/y", "image_meta": {}}}"#, Some("ValidationError: Validation error: Invalid input for field/attribute image_meta. Value: {}. 'os_version' is a required property")),
    (Schema::ImageCreate, r#"{"image": {"image_name": "i", "url": "file:///x/y", "image_meta": {"os_version": "rhel8", "disk_type": "FBA"}}}"#, Some("ValidationError: Validation error: Invalid input for field/attribute disk_type. Value: FBA. 'FBA' is not one of ['DASD', 'dasd', 'SCSI', 'scsi']")),
    (Schema::ImageCreate, r#"{"image": {"image_name": "i", "url": "http://10.0.0.1/i", "image_meta": {"os_version": "ubuntu20"}, "remote_host": "nova@"}}"#, Some(r#"ValidationError: Validation error: Invalid input for field/attribute remote_host. Value: nova@. 'nova@' does not match '^[a-zA-Z0-9\\-]+\\@([0-9]{1,3}(.[0-9]{1,3}){3}$|[a-zA-Z0-9\\-]+(.[a-zA-Z0-9\\-]){1,}$)'"#)),
    (Schema::ImageCreate, r#"{"image": {"url": "file:///x/y"}}"#, Some("ValidationError: Validation error: Invalid input for field/attribute image. Value: {'url': 'file:///x/y'}. 'image_name' is a required property")),
    (Schema::ImageExport, r#"{"location": {"dest_url": "file:///tmp/export/img1", "remote_host": "nova@10.0.0.2"}}"#, None),
    (Schema::ImageExport, r#"{"location": {"dest_url": "/tmp/export/img1"}}"#, Some(r#"ValidationError: Validation error: Invalid input for field/attribute dest_url. Value: /tmp/export/img1. '/tmp/export/img1' does not match '^https?:/{2}|^file:/{3}\\w.+$'"#)),
    (Schema::ImageExport, r#"{"location": {}}"#, Some("ValidationError: Validation error: Invalid input for field/attribute location. Value: {}. 'dest_url' is a required property")),
    (Schema::VswitchCreate, r#"{"vswitch": {"name": "VSW1", "rdev": "1000", "vid": 100, "port_type": "TRUNK", "native_vid": 1, "queue_mem": 4, "persist": true}}"#, None),
    (Schema::VswitchCreate, r#"{"vswitch": {"name": "NAMETOOLONG"}}"#, Some("ValidationError: Validation error: Invalid input for field/attribute name. Value: NAMETOOLONG. 'NAMETOOLONG' is too long")),
    (Schema::VswitchCreate, r#"{"vswitch": {"name": "V1", "queue_mem": 9}}"#, Some("ValidationError: Validation error: Invalid input for field/attribute queue_mem. Value: 9. 9 is greater than the maximum of 8")),
    (Schema::VswitchCreate, r#"{"vswitch": {"name": "V1", "rdev": "1000 2000 3000 4000"}}"#, Some("ValidationError: Validation error: Invalid input for field/attribute rdev. Value: 1000 2000 3000 4000. '1000 2000 3000 4000' is not valid under any of the given schemas")),
    (Schema::VswitchCreate, r#"{"vswitch": {"name": "V1", "vid": 0}}"#, Some("ValidationError: Validation error: Invalid input for field/attribute vid. Value: 0. 0 is not valid under any of the given schemas")),
    (Schema::VswitchCreate, r#"{"vswitch": {"name": "V1", "port_type": "HYBRID"}}"#, Some("ValidationError: Validation error: Invalid input for field/attribute port_type. Value: HYBRID. 'HYBRID' is not one of ['ACCESS', 'access', 'TRUNK', 'trunk']")),
    (Schema::VswitchCreate, r#"{"vswitch": {"name": "V1", "controller": "CONTROLLER1"}}"#, Some("ValidationError: Validation error: Invalid input for field/attribute controller. Value: CONTROLLER1. 'CONTROLLER1' is not valid under any of the given schemas")),
    (Schema::VswitchCreate, r#"{"vswitch": {"name": "V1", "connection": "Connect"}}"#, Some("ValidationError: Validation error: Invalid input for field/attribute connection. Value: Connect. 'Connect' is not one of ['CONnect', 'CONNECT', 'connect', 'DISCONnect', 'DISCONNECT', 'disconnect', 'NOUPLINK', 'nouplink']")),
    (Schema::VswitchCreate, r#"{"vswitch": {"name": "V1", "native_vid": "1"}}"#, Some("ValidationError: Validation error: Invalid input for field/attribute native_vid. Value: 1. '1' is not valid under any of the given schemas")),
    (Schema::VswitchCreate, r#"{"vswitch": {}}"#, Some("ValidationError: Validation error: Invalid input for field/attribute vswitch. Value: {}. 'name' is a required property")),
    (Schema::VswitchUpdate, r#"{"vswitch": {"user_vlan_id": {"userid": "U1", "vlanid": 5000}}}"#, Some("ValidationError: Validation error: Invalid input for field/attribute vlanid. Value: 5000. 5000 is greater than the maximum of 4094")),
    (Schema::VswitchUpdate, r#"{"vswitch": {"user_vlan_id": {"userid": "U1"}}}"#, Some("ValidationError: Validation error: Invalid input for field/attribute user_vlan_id. Value: {'userid': 'U1'}. 'vlanid' is a required property")),
    (Schema::VswitchUpdate, r#"{"vswitch": {"grant_userid": "TOOLONGUSERID"}}"#, Some("ValidationError: Validation error: Invalid input for field/attribute grant_userid. Value: TOOLONGUSERID. 'TOOLONGUSERID' is too long")),
    (Schema::VswitchUpdate, r#"{"vswitch": {"grant": "USER1"}}"#, Some("ValidationError: Validation error: Invalid input for field/attribute vswitch. Value: {'grant': 'USER1'}. Additional properties are not allowed ('grant' was unexpected)")),
    (Schema::VolumeAttach, r#"{"info": {"connection": {"assigner_id": "USER1", "zvm_fcp": ["1fc5"], "target_wwpn": ["0x50050763050b073d"], "target_lun": "0x4020400100000000", "os_version": "rhel7", "multipath": true, "mount_point": "/dev/sdz"}}}"#, None),
    (Schema::VolumeAttach, r#"{"info": {"connection": {"assigner_id": "USER1", "zvm_fcp": ["1fc"], "target_wwpn": ["0x50050763050b073d"], "target_lun": "0x4020400100000000", "os_version": "rhel7", "multipath": true, "mount_point": "/dev/sdz"}}}"#, Some("ValidationError: Validation error: Invalid input for field/attribute 0. Value: 1fc. '1fc' is too short")),
    (Schema::VolumeAttach, r#"{"info": {"connection": {"assigner_id": "USER1", "zvm_fcp": ["1fc5"], "target_wwpn": ["50050763050b073d"], "target_lun": "0x4020400100000000", "os_version": "rhel7", "multipath": true, "mount_point": "/dev/sdz"}}}"#, Some("ValidationError: Validation error: Invalid input for field/attribute 0. Value: 50050763050b073d. '50050763050b073d' is too short")),
    (Schema::VolumeAttach, r#"{"info": {"connection": {"assigner_id": "USER1", "zvm_fcp": ["1fc5"], "target_wwpn": ["0x50050763050b073d"], "target_lun": "0x40204001000000", "os_version": "rhel7", "multipath": true, "mount_point": "/dev/sdz"}}}"#, Some("ValidationError: Validation error: Invalid input for field/attribute target_lun. Value: 0x40204001000000. '0x40204001000000' is too short")),
    (Schema::VolumeAttach, r#"{"info": {"connection": {"assigner_id": "USER1", "zvm_fcp": ["1fc5"], "target_wwpn": ["0x50050763050b073d"], "target_lun": "0x4020400100000000", "os_version": "rhel7", "mount_point": "/dev/sdz"}}}"#, Some("ValidationError: Validation error: Invalid input for field/attribute connection. Value: {'assigner_id': 'USER1', 'zvm_fcp': ['1fc5'], 'target_wwpn': ['0x50050763050b073d'], 'target_lun': '0x4020400100000000', 'os_version': 'rhel7', 'mount_point': '/dev/sdz'}. 'multipath' is a required property")),
    (Schema::VolumeAttach, r#"{"info": {"connection": {"assigner_id": "USER1", "zvm_fcp": ["1fc5"], "target_wwpn": ["0x50050763050b073d"], "target_lun": "0x4020400100000000", "os_version": "rhel7", "multipath": true, "mount_point": "/dev/sdz", "is_root_volume": "maybe"}}}"#, Some("ValidationError: Validation error: Invalid input for field/attribute is_root_volume. Value: maybe. 'maybe' is not one of [True, 'True', 'TRUE', 'true', '1', 'ON', 'On', 'on', 'YES', 'Yes', 'yes', False, 'False', 'FALSE', 'false', '0', 'OFF', 'Off', 'off', 'NO', 'No', 'no']")),
    (Schema::VolumeDetach, r#"{"info": {"connection": {"assigner_id": "USER1", "zvm_fcp": ["1fc5"], "target_wwpn": ["0x50050763050b073d"], "target_lun": "0x4020400100000000", "os_version": "rhel5", "multipath": true, "mount_point": "/dev/sdz"}}}"#, Some("ValidationError: Validation error: Invalid input for field/attribute os_version. Value: rhel5. 'rhel5' is not valid under any of the given schemas")),
    (Schema::VolumeDetach, r#"{"info": {"connection": {"assigner_id": "a b", "zvm_fcp": ["1fc5"], "target_wwpn": ["0x50050763050b073d"], "target_lun": "0x4020400100000000", "os_version": "rhel7", "multipath": true, "mount_point": "/dev/sdz"}}}"#, Some(r#"ValidationError: Validation error: Invalid input for field/attribute assigner_id. Value: a b. 'a b' does not match '^(\\w{,8})$'"#)),
    (Schema::SetFcpUsage, r#"{"info": {"userid": "USER1", "reserved": 1, "connections": 2, "fcp_template_id": "tmpl-1"}}"#, None),
    (Schema::SetFcpUsage, r#"{"info": {"userid": "USER1", "reserved": 2, "connections": 2}}"#, Some("ValidationError: Validation error: Invalid input for field/attribute reserved. Value: 2. 2 is greater than the maximum of 1")),
    (Schema::SetFcpUsage, r#"{"info": {"userid": "USER1", "reserved": 0}}"#, Some("ValidationError: Validation error: Invalid input for field/attribute info. Value: {'userid': 'USER1', 'reserved': 0}. 'connections' is a required property")),
    (Schema::SetFcpUsage, r#"{"info": {"reserved": 0, "connections": 0, "fcp_template_id": "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}}"#, Some("ValidationError: Validation error: Invalid input for field/attribute fcp_template_id. Value: xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx. 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx' is not valid under any of the given schemas")),
    (Schema::SetFcpUsage, r#"{"info": {"reserved": 0, "connections": 0}, "more": 1}"#, Some("ValidationError: Validation error: Additional properties are not allowed ('more' was unexpected)")),
    (Schema::CreateFcpTemplate, r#"{"name": "tmpl", "description": "d", "fcp_devices": "1a00-1a0f", "host_default": false}"#, None),
    (Schema::CreateFcpTemplate, r#"{"description": "d"}"#, Some("ValidationError: Validation error: 'name' is a required property")),
    (Schema::CreateFcpTemplate, r#"{"name": "tmpl", "min_fcp_paths_count": 0}"#, Some("ValidationError: Validation error: Invalid input for field/attribute min_fcp_paths_count. Value: 0. 0 is less than the minimum of 1")),
    (Schema::CreateFcpTemplate, r#"{"name": "tmpl", "storage_providers": "sp1"}"#, Some("ValidationError: Validation error: Invalid input for field/attribute storage_providers. Value: sp1. 'sp1' is not of type 'array'")),
    (Schema::EditFcpTemplate, r#"{"name": "n2", "fcp_template_id": "tmpl-1"}"#, None),
    (Schema::EditFcpTemplate, r#"{"name": "n2", "fcp_template_id": "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}"#, Some("ValidationError: Validation error: Invalid input for field/attribute fcp_template_id. Value: xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx. 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx' is not valid under any of the given schemas")),
    (Schema::EditFcpTemplate, r#"{"name": "n2", "host_default": "nope", "fcp_template_id": "tmpl-1"}"#, Some("ValidationError: Validation error: Invalid input for field/attribute host_default. Value: nope. 'nope' is not one of [True, 'True', 'TRUE', 'true', '1', 'ON', 'On', 'on', 'YES', 'Yes', 'yes', False, 'False', 'FALSE', 'false', '0', 'OFF', 'Off', 'off', 'NO', 'No', 'no']")),
];

/// Decoded query parameters, in request order.
type Params = &'static [(&'static str, &'static str)];

/// Query strings of the routes that validate theirs.
const QUERIES: &[(Query, Params, Option<&str>)] = &[
    (Query::GuestStats, &[("userid", "USER1,USER2")], None),
    (Query::GuestStats, &[("userid", "A,B"), ("userid", "TOOLONGUSERID")], Some(r#"ValidationError: Validation error: Invalid input for query parameters 1. Value: TOOLONGUSERID. 'TOOLONGUSERID' does not match '^(\\s*\\w{1,8}\\s*)(,\\s*\\w{1,8}\\s*){0,}$'"#)),
    (Query::GuestStats, &[("userid", "")], Some("ValidationError: Validation error: Invalid input for query parameters 0. Value: . '' should be non-empty")),
    (Query::GuestStats, &[("userid", "A"), ("foo", "1"), ("bar", "2")], Some("ValidationError: Validation error: Additional properties are not allowed ('bar', 'foo' were unexpected)")),
    (Query::GuestInterfaceStats, &[("userid", "A-B")], Some(r#"ValidationError: Validation error: Invalid input for query parameters 0. Value: A-B. 'A-B' does not match '^(\\s*\\w{1,8}\\s*)(,\\s*\\w{1,8}\\s*){0,}$'"#)),
    (Query::GuestInterfaceStats, &[("userid", " A , B")], None),
    (Query::HostDiskpool, &[("poolname", "ECKD:pool1")], None),
    (Query::HostDiskpool, &[("poolname", "ECKD")], Some(r#"ValidationError: Validation error: Invalid input for query parameters 0. Value: ECKD. 'ECKD' does not match '^\\w+:\\w+$'"#)),
    (Query::HostDiskpool, &[("poolname", "ECKD"), ("poolname", "A:B")], Some("ValidationError: Validation error: Invalid input for query parameters poolname. Value: ['ECKD', 'A:B']. ['ECKD', 'A:B'] is too long")),
    (Query::HostDiskpool, &[("pool", "1")], Some("ValidationError: Validation error: Additional properties are not allowed ('pool' was unexpected)")),
    (Query::HostDiskpoolVolumes, &[("poolname", "x")], Some(r#"ValidationError: Validation error: Invalid input for query parameters 0. Value: x. 'x' does not match '^\\w+:\\w+$'"#)),
    (Query::HostVolume, &[("volumename", "IAS100")], None),
    (Query::HostVolume, &[("volumename", "TOOLONGVOL")], Some(r#"ValidationError: Validation error: Invalid input for query parameters 0. Value: TOOLONGVOL. 'TOOLONGVOL' does not match '^(\\w{,6})$'"#)),
    (Query::HostVolume, &[("volumename", "a"), ("volumename", "b")], Some("ValidationError: Validation error: Invalid input for query parameters volumename. Value: ['a', 'b']. ['a', 'b'] is too long")),
    (Query::HostVolume, &[("volume", "a")], Some("ValidationError: Validation error: Additional properties are not allowed ('volume' was unexpected)")),
    (Query::ImageQuery, &[("imagename", "")], Some("ValidationError: Validation error: Invalid input for query parameters 0. Value: . '' should be non-empty")),
    (Query::ImageQuery, &[("imagename", "a"), ("imagename", "b")], Some("ValidationError: Validation error: Invalid input for query parameters imagename. Value: ['a', 'b']. ['a', 'b'] is too long")),
    (Query::ImageQuery, &[("imagename", "img1"), ("other", "x")], None),
    (Query::FcpTemplates, &[("assigner_id", "USER1")], None),
    (Query::FcpTemplates, &[("assigner_id", "TOOLONGUSERID")], Some("ValidationError: Validation error: Invalid input for query parameters 0. Value: TOOLONGUSERID. 'TOOLONGUSERID' is too long")),
    (Query::FcpTemplates, &[("assigner_id", "A"), ("assigner_id", "B")], Some("ValidationError: Validation error: Invalid input for query parameters assigner_id. Value: ['A', 'B']. ['A', 'B'] is too long")),
    (Query::FcpTemplates, &[("host_default", "maybe")], Some("ValidationError: Validation error: Invalid input for query parameters 0. Value: maybe. 'maybe' is not one of [True, 'True', 'TRUE', 'true', '1', 'ON', 'On', 'on', 'YES', 'Yes', 'yes', False, 'False', 'FALSE', 'false', '0', 'OFF', 'Off', 'off', 'NO', 'No', 'no']")),
    (Query::FcpTemplates, &[("template_id_list", "a"), ("template_id_list", "b"), ("storage_providers", "x"), ("host_default", "yes")], None),
    (Query::FcpTemplates, &[("raw", "true")], Some("ValidationError: Validation error: Additional properties are not allowed ('raw' was unexpected)")),
    (Query::FcpTemplatesDetail, &[("raw", "False"), ("statistics", "True"), ("sync_with_zvm", "False")], None),
    (Query::FcpTemplatesDetail, &[("statistics", "perhaps")], Some("ValidationError: Validation error: Invalid input for query parameters 0. Value: perhaps. 'perhaps' is not one of [True, 'True', 'TRUE', 'true', '1', 'ON', 'On', 'on', 'YES', 'Yes', 'yes', False, 'False', 'FALSE', 'false', '0', 'OFF', 'Off', 'off', 'NO', 'No', 'no']")),
    (Query::FcpTemplatesDetail, &[("raw", "true"), ("raw", "false")], Some("ValidationError: Validation error: Invalid input for query parameters raw. Value: ['true', 'false']. ['true', 'false'] is too long")),
    (Query::FcpTemplatesDetail, &[("assigner_id", "USER1")], Some("ValidationError: Validation error: Additional properties are not allowed ('assigner_id' was unexpected)")),
];

/// Userids of `GET /guests/{userid}/...` and `GET /volumes/conn/{userid}` paths.
const PATH_USERIDS: &[(&str, Option<&str>)] = &[
    (
        "TOOLONGUSERID",
        Some(
            r#"ValidationError: Validation error: Invalid input for query parameters userid. Value: TOOLONGUSERID. 'TOOLONGUSERID' does not match '^(\\s*\\w{1,8}\\s*)(,\\s*\\w{1,8}\\s*){0,}$'"#,
        ),
    ),
    (
        "A-B",
        Some(
            r#"ValidationError: Validation error: Invalid input for query parameters userid. Value: A-B. 'A-B' does not match '^(\\s*\\w{1,8}\\s*)(,\\s*\\w{1,8}\\s*){0,}$'"#,
        ),
    ),
    ("USER1", None),
    ("A,B", None),
    (
        "A,,B",
        Some(
            r#"ValidationError: Validation error: Invalid input for query parameters userid. Value: A,,B. 'A,,B' does not match '^(\\s*\\w{1,8}\\s*)(,\\s*\\w{1,8}\\s*){0,}$'"#,
        ),
    ),
    (
        "O'NEIL",
        Some(
            r#"ValidationError: Validation error: Invalid input for query parameters userid. Value: O'NEIL. "O'NEIL" does not match '^(\\s*\\w{1,8}\\s*)(,\\s*\\w{1,8}\\s*){0,}$'"#,
        ),
    ),
];

/// FCP ids of `GET /volumes/fcp/{fcp_id}` paths.
const PATH_FCP_IDS: &[(&str, Option<&str>)] = &[
    ("1fc5", None),
    ("12345", Some("ValidationError: Validation error: Invalid input for query parameters fcp_id. Value: 12345. '12345' is too long")),
    ("12", Some("ValidationError: Validation error: Invalid input for query parameters fcp_id. Value: 12. '12' is too short")),
    ("xyzw", Some("ValidationError: Validation error: Invalid input for query parameters fcp_id. Value: xyzw. 'xyzw' does not match '^[0-9a-fA-F]{4}$'")),
];

#[test]
fn bodies_match_the_reference() {
    for (schema, text, want) in BODIES {
        let value: Value = serde_json::from_str(text).expect(text);
        assert_eq!(
            body(*schema, &value).err().as_deref(),
            *want,
            "{schema:?} {text}"
        );
    }
}

#[test]
fn queries_match_the_reference() {
    for (schema, params, want) in QUERIES {
        let params: Vec<(String, String)> = params
            .iter()
            .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
            .collect();
        let got = query(*schema, &params);
        assert_eq!(got.err().as_deref(), *want, "{schema:?} {params:?}");
    }
}

#[test]
fn path_arguments_match_the_reference() {
    for (userid, want) in PATH_USERIDS {
        assert_eq!(path_userid(userid).err().as_deref(), *want, "{userid}");
    }
    for (fcp_id, want) in PATH_FCP_IDS {
        assert_eq!(path_fcp_id(fcp_id).err().as_deref(), *want, "{fcp_id}");
    }
}

#[test]
fn actions_have_their_schemas() {
    let cases = [
        ("start", Some(Schema::Start)),
        ("softstop", Some(Schema::Softstop)),
        ("live_resize_cpus", Some(Schema::ResizeCpus)),
        ("live_resize_mem", Some(Schema::ResizeMem)),
        ("get_console_output", Some(Schema::Unvalidated)),
        ("fly", None),
        ("", None),
    ];
    for (action, want) in cases {
        assert_eq!(Schema::for_action(action), want, "{action}");
    }
    let bare = serde_json::json!({"timeout": -1});
    let with_action = serde_json::json!({"action": "start", "timeout": -1});
    assert_eq!(
        body(Schema::Start, &bare),
        body(Schema::Start, &with_action)
    );
}
