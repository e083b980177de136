//! The console door's account's login shell: sshd runs the forced command
//! `console-keys` gave through it (`-c "door PRINCIPAL SOCKET"`). All of it
//! is `guest_installer::console_door::door`.

fn main() {
    std::process::exit(guest_installer::console_door::door::main());
}
