//! oVirt `AuditLogType` codes the audit log uses, under oVirt's names.

/// No matching oVirt type.
pub const UNASSIGNED: u32 = 0;
/// A user logged in.
pub const USER_VDC_LOGIN: u32 = 30;
/// A host was activated.
pub const VDS_ACTIVATE: u32 = 16;
/// A host could not be put into maintenance.
pub const VDS_MAINTENANCE_FAILED: u32 = 17;
/// A host could not be activated.
pub const VDS_ACTIVATE_FAILED: u32 = 18;
/// A VM was started (or resumed from suspension).
pub const USER_RUN_VM: u32 = 32;
/// A VM was powered off.
pub const USER_STOP_VM: u32 = 33;
/// A VM was created (also by clone or copy).
pub const USER_ADD_VM: u32 = 34;
/// A VM was changed.
pub const USER_UPDATE_VM: u32 = 35;
/// Media were inserted into a CD drive.
pub const USER_CHANGE_DISK_VM: u32 = 38;
/// A VM was paused.
pub const USER_PAUSE_VM: u32 = 39;
/// A paused VM was unpaused.
pub const USER_RESUME_VM: u32 = 40;
/// A host was changed.
pub const USER_UPDATE_VDS: u32 = 43;
/// A snapshot was taken.
pub const USER_CREATE_SNAPSHOT: u32 = 45;
/// A VM was reverted to a snapshot.
pub const USER_RESTORE_FROM_SNAPSHOT: u32 = 47;
/// A template was created.
pub const USER_ADD_VM_TEMPLATE: u32 = 48;
/// A template was changed.
pub const USER_UPDATE_VM_TEMPLATE: u32 = 49;
/// A template was removed.
pub const USER_REMOVE_VM_TEMPLATE: u32 = 50;
/// Starting (or resuming) a VM failed.
pub const USER_FAILED_RUN_VM: u32 = 54;
/// Pausing a VM failed.
pub const USER_FAILED_PAUSE_VM: u32 = 55;
/// Powering off a VM failed.
pub const USER_FAILED_STOP_VM: u32 = 56;
/// Creating a VM failed.
pub const USER_FAILED_ADD_VM: u32 = 57;
/// Changing a VM failed.
pub const USER_FAILED_UPDATE_VM: u32 = 58;
/// Removing a VM failed.
pub const USER_FAILED_REMOVE_VM: u32 = 59;
/// A VM was shut down.
pub const USER_INITIATED_SHUTDOWN_VM: u32 = 73;
/// Shutting down a VM failed.
pub const USER_FAILED_SHUTDOWN_VM: u32 = 74;
/// Disks were added to a VM.
pub const USER_ADD_DISK_TO_VM: u32 = 78;
/// Adding disks to a VM failed.
pub const USER_FAILED_ADD_DISK_TO_VM: u32 = 79;
/// A disk was changed.
pub const USER_UPDATE_DISK: u32 = 86;
/// Changing a disk failed.
pub const USER_FAILED_UPDATE_DISK: u32 = 87;
/// A disk attachment was changed.
pub const USER_UPDATE_VM_DISK: u32 = 88;
/// Changing a disk attachment failed.
pub const USER_FAILED_UPDATE_VM_DISK: u32 = 89;
/// Changing the media of a CD drive failed.
pub const USER_FAILED_CHANGE_DISK_VM: u32 = 102;
/// Unpausing a VM failed.
pub const USER_FAILED_RESUME_VM: u32 = 103;
/// Changing a host failed.
pub const USER_FAILED_UPDATE_VDS: u32 = 105;
/// Creating a template failed.
pub const USER_FAILED_ADD_VM_TEMPLATE: u32 = 108;
/// Changing a template failed.
pub const USER_FAILED_UPDATE_VM_TEMPLATE: u32 = 109;
/// Removing a template failed.
pub const USER_FAILED_REMOVE_VM_TEMPLATE: u32 = 110;
/// A VM was removed.
pub const USER_REMOVE_VM_FINISHED: u32 = 113;
/// Reverting to a snapshot failed.
pub const USER_FAILED_RESTORE_FROM_SNAPSHOT: u32 = 116;
/// Taking a snapshot failed.
pub const USER_FAILED_CREATE_SNAPSHOT: u32 = 117;
/// A VM was rebooted.
pub const USER_REBOOT_VM: u32 = 157;
/// Rebooting a VM failed.
pub const USER_FAILED_REBOOT_VM: u32 = 158;
/// A VM was reset.
pub const USER_RESET_VM: u32 = 221;
/// Resetting a VM failed.
pub const USER_FAILED_RESET_VM: u32 = 222;
/// A snapshot was removed.
pub const USER_REMOVE_SNAPSHOT: u32 = 342;
/// Removing a snapshot failed.
pub const USER_FAILED_REMOVE_SNAPSHOT: u32 = 343;
/// Growing a disk failed.
pub const USER_EXTEND_DISK_SIZE_FAILURE: u32 = 370;
/// A disk was grown.
pub const USER_EXTEND_DISK_SIZE_SUCCESS: u32 = 371;
/// A VM was suspended to disk.
pub const USER_SUSPEND_VM: u32 = 501;
/// Suspending a VM failed.
pub const USER_FAILED_SUSPEND_VM: u32 = 502;
/// Media were ejected from a CD drive.
pub const USER_EJECT_VM_DISK: u32 = 528;
/// A host was put into maintenance.
pub const USER_VDS_MAINTENANCE: u32 = 600;
/// A bond was removed.
pub const NETWORK_REMOVE_BOND: u32 = 926;
/// Removing a bond failed.
pub const NETWORK_REMOVE_BOND_FAILED: u32 = 927;
/// A NIC was removed from a VM.
pub const NETWORK_REMOVE_VM_INTERFACE: u32 = 930;
/// Removing a NIC failed.
pub const NETWORK_REMOVE_VM_INTERFACE_FAILED: u32 = 931;
/// A NIC was added to a VM.
pub const NETWORK_ADD_VM_INTERFACE: u32 = 932;
/// Adding a NIC failed.
pub const NETWORK_ADD_VM_INTERFACE_FAILED: u32 = 933;
/// A NIC was changed.
pub const NETWORK_UPDATE_VM_INTERFACE: u32 = 934;
/// Changing a NIC failed.
pub const NETWORK_UPDATE_VM_INTERFACE_FAILED: u32 = 935;
/// A network was created.
pub const NETWORK_ADD_NETWORK: u32 = 942;
/// Creating a network failed.
pub const NETWORK_ADD_NETWORK_FAILED: u32 = 943;
/// A network was removed.
pub const NETWORK_REMOVE_NETWORK: u32 = 944;
/// Removing a network failed.
pub const NETWORK_REMOVE_NETWORK_FAILED: u32 = 9441;
/// The pool was changed.
pub const USER_UPDATE_STORAGE_POOL: u32 = 952;
/// Changing the pool failed.
pub const USER_UPDATE_STORAGE_POOL_FAILED: u32 = 953;
/// A storage repository was created or introduced.
pub const USER_ADD_STORAGE_DOMAIN: u32 = 956;
/// Creating or introducing a storage repository failed.
pub const USER_ADD_STORAGE_DOMAIN_FAILED: u32 = 957;
/// A storage repository was changed.
pub const USER_UPDATE_STORAGE_DOMAIN: u32 = 958;
/// Changing a storage repository failed.
pub const USER_UPDATE_STORAGE_DOMAIN_FAILED: u32 = 959;
/// A storage repository was destroyed.
pub const USER_REMOVE_STORAGE_DOMAIN: u32 = 960;
/// Destroying a storage repository failed.
pub const USER_REMOVE_STORAGE_DOMAIN_FAILED: u32 = 961;
/// A storage repository was forgotten.
pub const USER_DETACH_STORAGE_DOMAIN_FROM_POOL: u32 = 964;
/// Forgetting a storage repository failed.
pub const USER_DETACH_STORAGE_DOMAIN_FROM_POOL_FAILED: u32 = 965;
/// A storage repository was plugged into a host.
pub const USER_ACTIVATED_STORAGE_DOMAIN: u32 = 966;
/// Plugging a storage repository failed.
pub const USER_ACTIVATE_STORAGE_DOMAIN_FAILED: u32 = 967;
/// A storage repository was unplugged from a host.
pub const USER_DEACTIVATED_STORAGE_DOMAIN: u32 = 968;
/// Unplugging a storage repository failed.
pub const USER_DEACTIVATE_STORAGE_DOMAIN_FAILED: u32 = 969;
/// A NIC was plugged.
pub const NETWORK_ACTIVATE_VM_INTERFACE_SUCCESS: u32 = 1012;
/// Plugging a NIC failed.
pub const NETWORK_ACTIVATE_VM_INTERFACE_FAILURE: u32 = 1013;
/// A NIC was unplugged.
pub const NETWORK_DEACTIVATE_VM_INTERFACE_SUCCESS: u32 = 1014;
/// Unplugging a NIC failed.
pub const NETWORK_DEACTIVATE_VM_INTERFACE_FAILURE: u32 = 1015;
/// A host's network interfaces were changed.
pub const NETWORK_UPDATE_NETWORK_TO_VDS_INTERFACE: u32 = 1102;
/// Changing a host's network interfaces failed.
pub const NETWORK_UPDATE_NETWORK_TO_VDS_INTERFACE_FAILED: u32 = 1103;
/// A network was changed.
pub const NETWORK_UPDATE_NETWORK: u32 = 1114;
/// Changing a network failed.
pub const NETWORK_UPDATE_NETWORK_FAILED: u32 = 11144;
/// A disk was plugged into a running VM.
pub const USER_HOTPLUG_DISK: u32 = 2000;
/// Plugging a disk failed.
pub const USER_FAILED_HOTPLUG_DISK: u32 = 2001;
/// A disk was unplugged from a running VM.
pub const USER_HOTUNPLUG_DISK: u32 = 2002;
/// Unplugging a disk failed.
pub const USER_FAILED_HOTUNPLUG_DISK: u32 = 2003;
/// A disk was cloned or copied.
pub const USER_COPIED_DISK: u32 = 2004;
/// Cloning or copying a disk failed.
pub const USER_FAILED_COPY_DISK: u32 = 2005;
/// A disk was removed.
pub const USER_FINISHED_REMOVE_DISK: u32 = 2014;
/// Removing a disk failed.
pub const USER_FINISHED_FAILED_REMOVE_DISK: u32 = 2015;
/// A disk was attached to a VM.
pub const USER_ATTACH_DISK_TO_VM: u32 = 2016;
/// Attaching a disk failed.
pub const USER_FAILED_ATTACH_DISK_TO_VM: u32 = 2017;
/// A disk was detached from a VM.
pub const USER_DETACH_DISK_FROM_VM: u32 = 2018;
/// Detaching a disk failed.
pub const USER_FAILED_DETACH_DISK_FROM_VM: u32 = 2019;
/// A disk was created.
pub const USER_ADD_DISK: u32 = 2020;
/// Creating a disk failed.
pub const USER_FAILED_ADD_DISK: u32 = 2023;
/// A task was cancelled.
pub const TASK_STOPPING_ASYNC_TASK: u32 = 9500;
/// A host stopped answering.
pub const VDS_FAILURE: u32 = 12;
/// A live migration finished.
pub const VM_MIGRATION_DONE: u32 = 63;
/// A live migration failed.
pub const VM_MIGRATION_FAILED: u32 = 65;
/// A host was fenced (switched off by power management).
pub const VDS_AUTO_FENCE_STATUS: u32 = 9000;
/// A host could not be fenced.
pub const VDS_AUTO_FENCE_FAILED: u32 = 9001;
/// A highly available VM was restarted after its host failed.
pub const HA_VM_RESTARTED: u32 = 9602;
/// A highly available VM could not be restarted.
pub const HA_VM_RESTART_FAILED: u32 = 9603;
/// The power saver switched a host off or on.
pub const VDS_POWER_SAVE: u32 = 9050;
/// A user added a host.
pub const USER_ADD_VDS: u32 = 42;
/// Adding a host failed.
pub const USER_FAILED_ADD_VDS: u32 = 104;
/// A user removed a host.
pub const USER_REMOVE_VDS: u32 = 44;
/// Removing a host failed.
pub const USER_FAILED_REMOVE_VDS: u32 = 106;
/// A user cancelled a migration.
pub const VM_MIGRATION_CANCELED: u32 = 64;
