//! saturn-admin: mqadmin's most used commands, same names and flags.

use std::process::ExitCode;
use std::time::Duration;

use admin::client::{Admin, AdminError, Result};
use admin::cmd::{cluster, group, message, offset, send, topic, trace};
use admin::out::Output;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "saturn-admin",
    version,
    about = "mqadmin's most used commands for Saturn and Apache RocketMQ"
)]
struct Cli {
    /// Name server address(es), `host:port[;host:port]` (default: $NAMESRV_ADDR)
    #[arg(short = 'n', long = "namesrvAddr", global = true)]
    namesrv: Option<String>,
    /// Print JSON instead of tables
    #[arg(long, global = true)]
    json: bool,
    /// Timeout of each call, in milliseconds
    #[arg(long = "timeoutMillis", global = true, default_value_t = 5000)]
    timeout_ms: u64,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
#[allow(clippy::enum_variant_names)]
enum Cmd {
    /// List the brokers of each cluster with version, rates and disk use
    #[command(name = "clusterList")]
    ClusterList {
        #[arg(short = 'c', long = "clusterName")]
        cluster: Option<String>,
    },
    /// A broker's runtime statistics
    #[command(name = "brokerStatus")]
    BrokerStatus {
        #[arg(short = 'b', long = "brokerAddr")]
        broker: Option<String>,
        #[arg(short = 'c', long = "clusterName")]
        cluster: Option<String>,
    },
    /// List topics (-c: with cluster and consumer groups)
    #[command(name = "topicList")]
    TopicList {
        #[arg(short = 'c', long = "clusterModel")]
        cluster: bool,
    },
    /// A topic's route
    #[command(name = "topicRoute")]
    TopicRoute {
        #[arg(short = 't', long = "topic")]
        topic: String,
    },
    /// Min and max offsets of a topic's queues
    #[command(name = "topicStatus")]
    TopicStatus {
        #[arg(short = 't', long = "topic")]
        topic: String,
    },
    /// The clusters a topic is in
    #[command(name = "topicClusterList")]
    TopicClusterList {
        #[arg(short = 't', long = "topic")]
        topic: String,
    },
    /// Create or change a topic
    #[command(name = "updateTopic")]
    UpdateTopic {
        #[arg(short = 'b', long = "brokerAddr")]
        broker: Option<String>,
        #[arg(short = 'c', long = "clusterName")]
        cluster: Option<String>,
        #[arg(short = 't', long = "topic")]
        topic: String,
        #[arg(short = 'r', long = "readQueueNums", default_value_t = 8)]
        read: i32,
        #[arg(short = 'w', long = "writeQueueNums", default_value_t = 8)]
        write: i32,
        #[arg(short = 'p', long = "perm", default_value_t = 6)]
        perm: i32,
        #[arg(short = 'o', long = "order")]
        order: Option<bool>,
        #[arg(short = 'a', long = "attributes")]
        attributes: Option<String>,
    },
    /// Delete a topic from the brokers of a cluster and from the name servers
    #[command(name = "deleteTopic")]
    DeleteTopic {
        #[arg(short = 't', long = "topic")]
        topic: String,
        #[arg(short = 'c', long = "clusterName")]
        cluster: Option<String>,
    },
    /// Create or change a subscription group
    #[command(name = "updateSubGroup")]
    UpdateSubGroup(SubGroupArgs),
    /// Delete a subscription group
    #[command(name = "deleteSubGroup")]
    DeleteSubGroup {
        #[arg(short = 'b', long = "brokerAddr")]
        broker: Option<String>,
        #[arg(short = 'c', long = "clusterName")]
        cluster: Option<String>,
        #[arg(short = 'g', long = "groupName")]
        group: String,
        #[arg(short = 'r', long = "removeOffset")]
        remove_offset: Option<bool>,
    },
    /// A group's consume progress (lag per queue); without -g every group
    #[command(name = "consumerProgress")]
    ConsumerProgress {
        #[arg(short = 'g', long = "groupName")]
        group: Option<String>,
        #[arg(short = 't', long = "topicName")]
        topic: Option<String>,
    },
    /// A consumer group's clients and subscriptions
    #[command(name = "consumerConnection")]
    ConsumerConnection {
        #[arg(short = 'g', long = "consumerGroup")]
        group: String,
    },
    /// A producer group's clients
    #[command(name = "producerConnection")]
    ProducerConnection {
        #[arg(short = 'g', long = "producerGroup")]
        group: String,
        #[arg(short = 't', long = "topic")]
        topic: String,
    },
    /// Reset a group's offsets to a time
    #[command(name = "resetOffsetByTime")]
    ResetOffsetByTime {
        #[arg(short = 'g', long = "group")]
        group: String,
        #[arg(short = 't', long = "topic")]
        topic: String,
        /// now, milliseconds, or yyyy-MM-dd#HH:mm:ss:SSS (UTC)
        #[arg(short = 's', long = "timestamp")]
        timestamp: String,
        #[arg(short = 'f', long = "force")]
        force: Option<bool>,
    },
    /// Move a group past its backlog (reset to the end)
    #[command(name = "skipAccumulatedMessage")]
    SkipAccumulatedMessage {
        #[arg(short = 'g', long = "group")]
        group: String,
        #[arg(short = 't', long = "topic")]
        topic: String,
        #[arg(short = 'f', long = "force")]
        force: Option<bool>,
    },
    /// Messages by offsetMsgId (comma separated)
    #[command(name = "queryMsgById")]
    QueryMsgById {
        #[arg(short = 'i', long = "msgId")]
        id: String,
    },
    /// Messages by key
    #[command(name = "queryMsgByKey")]
    QueryMsgByKey {
        #[arg(short = 't', long = "topic")]
        topic: String,
        #[arg(short = 'k', long = "msgKey")]
        key: String,
        #[arg(short = 'b', long = "beginTimestamp", default_value_t = 0)]
        begin: i64,
        #[arg(short = 'e', long = "endTimestamp", default_value_t = i64::MAX)]
        end: i64,
        #[arg(short = 'c', long = "maxNum", default_value_t = 64)]
        max: i32,
    },
    /// A message by its client id (UNIQ_KEY)
    #[command(name = "queryMsgByUniqueKey")]
    QueryMsgByUniqueKey {
        #[arg(short = 'i', long = "msgId")]
        id: String,
        #[arg(short = 't', long = "topic")]
        topic: String,
    },
    /// The message at a queue offset
    #[command(name = "queryMsgByOffset")]
    QueryMsgByOffset {
        #[arg(short = 't', long = "topic")]
        topic: String,
        #[arg(short = 'b', long = "brokerName")]
        broker: String,
        #[arg(short = 'i', long = "queueId")]
        queue: i32,
        #[arg(short = 'o', long = "offset")]
        offset: i64,
    },
    /// A message's trace records (clients with tracing on)
    #[command(name = "queryMsgTraceById")]
    QueryMsgTraceById {
        #[arg(short = 'i', long = "msgId")]
        id: String,
        #[arg(short = 't', long = "traceTopic", default_value = trace::DEFAULT_TRACE_TOPIC)]
        trace_topic: String,
    },
    /// Print a topic's messages (optionally in a time range)
    #[command(name = "printMsg")]
    PrintMsg {
        #[arg(short = 't', long = "topic")]
        topic: String,
        #[arg(short = 'b', long = "beginTimestamp")]
        begin: Option<String>,
        #[arg(short = 'e', long = "endTimestamp")]
        end: Option<String>,
        #[arg(short = 'd', long = "printBody")]
        body: Option<bool>,
        /// At most this many messages (saturn-admin's bound; mqadmin has none)
        #[arg(long = "max", default_value_t = 10_000)]
        max: usize,
    },
    /// Send one message
    #[command(name = "sendMessage")]
    SendMessage {
        #[arg(short = 't', long = "topic")]
        topic: String,
        #[arg(short = 'p', long = "body")]
        body: String,
        #[arg(short = 'k', long = "key")]
        keys: Option<String>,
        #[arg(short = 'c', long = "tags")]
        tags: Option<String>,
        #[arg(short = 'b', long = "broker")]
        broker: Option<String>,
        #[arg(short = 'i', long = "qid")]
        queue: Option<i32>,
    },
    /// Read messages from a topic (a queue, an offset, a time range)
    #[command(name = "consumeMessage")]
    ConsumeMessage {
        #[arg(short = 't', long = "topic")]
        topic: String,
        #[arg(short = 'b', long = "brokerName")]
        broker: Option<String>,
        #[arg(short = 'i', long = "queueId")]
        queue: Option<i32>,
        #[arg(short = 'o', long = "offset")]
        offset: Option<i64>,
        #[arg(short = 'g', long = "consumerGroup", default_value = message::TOOLS_GROUP)]
        group: String,
        #[arg(short = 's', long = "beginTimestamp")]
        begin: Option<String>,
        #[arg(short = 'e', long = "endTimestamp")]
        end: Option<String>,
        #[arg(short = 'c', long = "MessageNumber", default_value_t = 128)]
        count: usize,
    },
    /// A broker's configuration
    #[command(name = "getBrokerConfig")]
    GetBrokerConfig {
        #[arg(short = 'b', long = "brokerAddr")]
        broker: Option<String>,
        #[arg(short = 'c', long = "clusterName")]
        cluster: Option<String>,
    },
    /// Change a broker's configuration at run time
    #[command(name = "updateBrokerConfig")]
    UpdateBrokerConfig {
        #[arg(short = 'b', long = "brokerAddr")]
        broker: Option<String>,
        #[arg(short = 'c', long = "clusterName")]
        cluster: Option<String>,
        #[arg(short = 'k', long = "key")]
        key: String,
        #[arg(short = 'v', long = "value")]
        value: String,
    },
    /// The name servers' configuration
    #[command(name = "getNamesrvConfig")]
    GetNamesrvConfig,
    /// Per topic and group: backlog, in/out rates, 24 h counts
    #[command(name = "statsAll")]
    StatsAll {
        #[arg(short = 't', long = "topic")]
        topic: Option<String>,
    },
    /// Lag of every group on one broker
    #[command(name = "brokerConsumeStats")]
    BrokerConsumeStats {
        #[arg(short = 'b', long = "brokerAddr")]
        broker: String,
        #[arg(short = 'o', long = "order")]
        order: Option<bool>,
    },
    /// Take write permission away from a broker on the name servers
    #[command(name = "wipeWritePerm")]
    WipeWritePerm {
        #[arg(short = 'b', long = "brokerName")]
        broker: String,
    },
    /// Give write permission back to a broker on the name servers
    #[command(name = "addWritePerm")]
    AddWritePerm {
        #[arg(short = 'b', long = "brokerName")]
        broker: String,
    },
    /// Serve Saturn's dashboard (page and JSON API) for the name servers of -n, next to a
    /// saturn-namesrv; runs until stopped
    #[command(name = "dashboard")]
    Dashboard {
        /// Address to listen on
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
        /// The `admin` password (default: $SATURN_DASHBOARD_PASSWORD); required beyond loopback
        #[arg(long)]
        password: Option<String>,
        /// The read-only `viewer` password (default: $SATURN_DASHBOARD_READONLY_PASSWORD)
        #[arg(long)]
        readonly_password: Option<String>,
        #[command(flatten)]
        watch: admin::dash::watch::WatchFlags,
    },
}

#[derive(clap::Args)]
struct SubGroupArgs {
    #[arg(short = 'b', long = "brokerAddr")]
    broker: Option<String>,
    #[arg(short = 'c', long = "clusterName")]
    cluster: Option<String>,
    #[arg(short = 'g', long = "groupName")]
    group: String,
    #[arg(short = 's', long = "consumeEnable")]
    consume_enable: Option<bool>,
    #[arg(short = 'm', long = "consumeFromMinEnable")]
    from_min: Option<bool>,
    #[arg(short = 'd', long = "consumeBroadcastEnable")]
    broadcast: Option<bool>,
    #[arg(short = 'o', long = "consumeMessageOrderly")]
    orderly: Option<bool>,
    #[arg(short = 'q', long = "retryQueueNums")]
    retry_queues: Option<i32>,
    #[arg(short = 'r', long = "retryMaxTimes")]
    retry_max: Option<i32>,
    #[arg(short = 'i', long = "brokerId")]
    broker_id: Option<i64>,
    #[arg(short = 'w', long = "whichBrokerWhenConsumeSlowly")]
    slowly: Option<i64>,
    #[arg(short = 'a', long = "notifyConsumerIdsChanged")]
    notify: Option<bool>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let namesrv = cli
        .namesrv
        .clone()
        .or_else(|| std::env::var("NAMESRV_ADDR").ok())
        .unwrap_or_default();
    if let Cmd::Dashboard {
        listen,
        password,
        readonly_password,
        watch,
    } = cli.cmd
    {
        return dashboard(&namesrv, listen, (password, readonly_password), &watch);
    }
    let mut admin = Admin::new(&namesrv, Duration::from_millis(cli.timeout_ms));
    match run(&mut admin, cli.cmd) {
        Ok(out) => {
            if cli.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&out.to_json()).unwrap_or_default()
                );
            } else {
                print!("{}", out.render());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("saturn-admin: {e}");
            ExitCode::FAILURE
        }
    }
}

fn dashboard(
    namesrv: &str,
    listen: std::net::SocketAddr,
    (password, readonly): (Option<String>, Option<String>),
    watch: &admin::dash::watch::WatchFlags,
) -> ExitCode {
    if namesrv.is_empty() {
        eprintln!("saturn-admin: no name server address: give -n host:port or set NAMESRV_ADDR");
        return ExitCode::FAILURE;
    }
    let mut cfg = admin::dash::DashConfig::from_env(namesrv, password, readonly);
    cfg.watch = match watch.to_config() {
        Ok(w) => w,
        Err(e) => {
            eprintln!("saturn-admin: {e}");
            return ExitCode::FAILURE;
        }
    };
    let checked = admin::dash::Checked::new(listen, cfg);
    match checked.and_then(admin::dash::serve) {
        Ok(local) => {
            println!("saturn-dashboard listening on http://{local}/");
            loop {
                std::thread::park();
            }
        }
        Err(e) => {
            eprintln!("saturn-admin: {e}");
            ExitCode::FAILURE
        }
    }
}

fn time_arg(text: Option<&str>) -> Result<Option<i64>> {
    text.map(|t| offset::parse_time(t, cluster::now_ms()))
        .transpose()
}

fn run(a: &mut Admin, cmd: Cmd) -> Result<Output> {
    if a.namesrv_addrs().is_empty() {
        return Err(AdminError::Usage(
            "no name server: give -n host:port or set NAMESRV_ADDR".into(),
        ));
    }
    match cmd {
        Cmd::ClusterList { cluster } => cluster::cluster_list(a, cluster.as_deref()),
        Cmd::BrokerStatus { broker, cluster } => {
            cluster::broker_status(a, broker.as_deref(), cluster.as_deref())
        }
        Cmd::TopicList { cluster } => topic::topic_list(a, cluster),
        Cmd::TopicRoute { topic } => topic::topic_route(a, &topic),
        Cmd::TopicStatus { topic } => topic::topic_status(a, &topic),
        Cmd::TopicClusterList { topic } => topic::topic_cluster_list(a, &topic),
        Cmd::UpdateTopic {
            broker,
            cluster,
            topic,
            read,
            write,
            perm,
            order,
            attributes,
        } => {
            let s = topic::TopicSettings {
                read,
                write,
                perm,
                order: order.unwrap_or(false),
                attributes,
            };
            topic::update_topic(a, broker.as_deref(), cluster.as_deref(), &topic, &s)
        }
        Cmd::DeleteTopic { topic, cluster } => topic::delete_topic(a, cluster.as_deref(), &topic),
        Cmd::UpdateSubGroup(g) => sub_group(a, g),
        Cmd::DeleteSubGroup {
            broker,
            cluster,
            group,
            remove_offset,
        } => group::delete_sub_group(
            a,
            broker.as_deref(),
            cluster.as_deref(),
            &group,
            remove_offset.unwrap_or(false),
        ),
        Cmd::ConsumerProgress { group, topic } => {
            group::consumer_progress(a, group.as_deref(), topic.as_deref())
        }
        Cmd::ConsumerConnection { group } => group::consumer_connection(a, &group),
        Cmd::ProducerConnection { group, topic } => group::producer_connection(a, &group, &topic),
        Cmd::ResetOffsetByTime {
            group,
            topic,
            timestamp,
            force,
        } => {
            let ts = offset::parse_time(&timestamp, cluster::now_ms())?;
            offset::reset_offset(a, &group, &topic, ts, force.unwrap_or(true))
        }
        Cmd::SkipAccumulatedMessage {
            group,
            topic,
            force,
        } => offset::reset_offset(a, &group, &topic, -1, force.unwrap_or(true)),
        other => run_more(a, other),
    }
}

fn sub_group(a: &mut Admin, g: SubGroupArgs) -> Result<Output> {
    let settings = group::GroupSettings {
        consume_enable: g.consume_enable,
        consume_from_min_enable: g.from_min,
        consume_broadcast_enable: g.broadcast,
        consume_message_orderly: g.orderly,
        retry_queue_nums: g.retry_queues,
        retry_max_times: g.retry_max,
        broker_id: g.broker_id,
        which_broker_when_consume_slowly: g.slowly,
        notify_consumer_ids_changed_enable: g.notify,
    };
    group::update_sub_group(
        a,
        g.broker.as_deref(),
        g.cluster.as_deref(),
        &g.group,
        &settings,
    )
}

fn run_more(a: &mut Admin, cmd: Cmd) -> Result<Output> {
    match cmd {
        Cmd::QueryMsgById { id } => message::query_by_id(a, &id),
        Cmd::QueryMsgByKey {
            topic,
            key,
            begin,
            end,
            max,
        } => message::query_by_key(a, &topic, &key, max, (begin, end)),
        Cmd::QueryMsgByUniqueKey { id, topic } => message::query_by_unique_key(a, &topic, &id),
        Cmd::QueryMsgTraceById { id, trace_topic } => trace::query_trace(a, &id, &trace_topic),
        Cmd::QueryMsgByOffset {
            topic,
            broker,
            queue,
            offset,
        } => message::query_by_offset(a, &topic, &broker, queue, offset),
        other => run_io(a, other),
    }
}

/// The commands that read or write messages in bulk.
fn run_io(a: &mut Admin, cmd: Cmd) -> Result<Output> {
    match cmd {
        Cmd::PrintMsg {
            topic,
            begin,
            end,
            body,
            max,
        } => {
            let r = message::Range {
                topic: &topic,
                broker_name: None,
                queue_id: None,
                offset: None,
                begin: time_arg(begin.as_deref())?,
                end: time_arg(end.as_deref())?,
                max,
                group: message::TOOLS_GROUP,
            };
            let msgs = message::read_range(a, &r)?;
            Ok(message::listing(&msgs, body.unwrap_or(true)))
        }
        Cmd::SendMessage {
            topic,
            body,
            keys,
            tags,
            broker,
            queue,
        } => {
            let args = send::SendArgs {
                topic: &topic,
                body: &body,
                keys: keys.as_deref(),
                tags: tags.as_deref(),
                broker_name: broker.as_deref(),
                queue_id: queue,
            };
            send::send_message(a, &args)
        }
        Cmd::ConsumeMessage {
            topic,
            broker,
            queue,
            offset,
            group,
            begin,
            end,
            count,
        } => {
            let r = message::Range {
                topic: &topic,
                broker_name: broker.as_deref(),
                queue_id: queue,
                offset,
                begin: time_arg(begin.as_deref())?,
                end: time_arg(end.as_deref())?,
                max: count,
                group: &group,
            };
            let msgs = message::read_range(a, &r)?;
            Ok(message::listing(&msgs, true))
        }
        other => run_broker(a, other),
    }
}

fn run_broker(a: &mut Admin, cmd: Cmd) -> Result<Output> {
    match cmd {
        Cmd::GetBrokerConfig { broker, cluster } => {
            cluster::get_broker_config(a, broker.as_deref(), cluster.as_deref())
        }
        Cmd::UpdateBrokerConfig {
            broker,
            cluster,
            key,
            value,
        } => cluster::update_broker_config(a, broker.as_deref(), cluster.as_deref(), &key, &value),
        Cmd::GetNamesrvConfig => cluster::get_namesrv_config(a),
        Cmd::StatsAll { topic } => topic::stats_all(a, topic.as_deref()),
        Cmd::BrokerConsumeStats { broker, order } => {
            cluster::broker_consume_stats(a, &broker, order.unwrap_or(false))
        }
        Cmd::WipeWritePerm { broker } => cluster::write_perm(a, &broker, false),
        Cmd::AddWritePerm { broker } => cluster::write_perm(a, &broker, true),
        _ => Err(AdminError::Usage("command not routed".into())),
    }
}
