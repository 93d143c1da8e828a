fn main() {
    println!("failover: controller not implemented yet");
}
