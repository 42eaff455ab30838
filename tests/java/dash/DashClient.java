import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.util.HashMap;
import java.util.Map;

import org.apache.rocketmq.client.consumer.DefaultMQPushConsumer;
import org.apache.rocketmq.client.consumer.listener.ConsumeConcurrentlyStatus;
import org.apache.rocketmq.client.consumer.listener.MessageListenerConcurrently;
import org.apache.rocketmq.client.producer.DefaultMQProducer;
import org.apache.rocketmq.client.producer.SendResult;
import org.apache.rocketmq.common.consumer.ConsumeFromWhere;
import org.apache.rocketmq.common.message.Message;
import org.apache.rocketmq.common.message.MessageExt;

/**
 * The Java client side of the dashboard's browser test (tests/e2e_dashboard_browser.js): one JVM
 * that takes commands on stdin, one per line, and answers on stdout. Producer and consumers are
 * built with enableMsgTrace=true (the default trace topic, RMQ_SYS_TRACE_TOPIC).
 *
 *   produce TOPIC COUNT KEYPREFIX   sends COUNT messages with keys KEYPREFIX-0..; "SENT key msgId offsetMsgId"
 *   consume GROUP TOPIC             starts a push consumer (from the first offset, offsets
 *                                   committed every second); "CONSUMED group key msgId reconsumeTimes origin"
 *   fail GROUP TOPIC                starts a push consumer that answers RECONSUME_LATER with
 *                                   maxReconsumeTimes 1, so each message ends in %DLQ%GROUP;
 *                                   "FAILED group key msgId reconsumeTimes"
 *   stop GROUP                      shuts that consumer down (its offsets are committed)
 *   quit
 * Each command ends with "OK <command>" (or "ERR <command> <why>").
 *
 *     java -cp classes:lib/* DashClient <namesrv>
 */
public class DashClient {
    static String namesrv;
    static DefaultMQProducer producer;
    static final Map<String, DefaultMQPushConsumer> consumers = new HashMap<>();
    static int instances = 0;

    static synchronized void out(String line) {
        System.out.println(line);
        System.out.flush();
    }

    public static void main(String[] args) throws Exception {
        namesrv = args[0];
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, "UTF-8"));
        String line;
        while ((line = in.readLine()) != null) {
            String[] a = line.trim().split(" ");
            if (a[0].isEmpty()) continue;
            if (a[0].equals("quit")) break;
            try {
                run(a);
                out("OK " + a[0]);
            } catch (Exception e) {
                out("ERR " + a[0] + " " + e);
            }
        }
        for (DefaultMQPushConsumer c : consumers.values()) c.shutdown();
        if (producer != null) producer.shutdown();
        out("BYE");
        System.exit(0);
    }

    static void run(String[] a) throws Exception {
        switch (a[0]) {
            case "produce": produce(a[1], Integer.parseInt(a[2]), a[3]); break;
            case "consume": consume(a[1], a[2], false); break;
            case "fail": consume(a[1], a[2], true); break;
            case "stop": {
                DefaultMQPushConsumer c = consumers.remove(a[1]);
                if (c == null) throw new IllegalStateException("no consumer of " + a[1]);
                c.shutdown();
                break;
            }
            default: throw new IllegalArgumentException("unknown command " + a[0]);
        }
    }

    static void produce(String topic, int count, String keyPrefix) throws Exception {
        if (producer == null) {
            producer = new DefaultMQProducer("DashE2EPG", true, null); // trace on, default topic
            producer.setNamesrvAddr(namesrv);
            producer.setInstanceName("dash-producer");
            producer.setPollNameServerInterval(1000);
            producer.start();
        }
        for (int i = 0; i < count; i++) {
            String key = keyPrefix + "-" + i;
            Message m = new Message(topic, "TagD", key, ("dash body " + key).getBytes("UTF-8"));
            m.putUserProperty("origin", "dash-e2e");
            SendResult r = producer.send(m);
            out("SENT " + key + " " + r.getMsgId() + " " + r.getOffsetMsgId() + " " + r.getSendStatus());
        }
    }

    static void consume(String group, String topic, boolean failing) throws Exception {
        if (consumers.containsKey(group)) throw new IllegalStateException(group + " is running");
        DefaultMQPushConsumer c = new DefaultMQPushConsumer(group, true, null); // trace on, default topic
        c.setNamesrvAddr(namesrv);
        c.setInstanceName("dash-" + group + "-" + (instances++));
        c.setConsumeFromWhere(ConsumeFromWhere.CONSUME_FROM_FIRST_OFFSET);
        c.setPersistConsumerOffsetInterval(1000);
        // routes every second (default 30 s): the retry topic, created on the first send-back,
        // is found at once
        c.setPollNameServerInterval(1000);
        c.setMaxReconsumeTimes(1);
        c.subscribe(topic, "*");
        c.registerMessageListener((MessageListenerConcurrently) (msgs, ctx) -> {
            for (MessageExt m : msgs) {
                out((failing ? "FAILED " : "CONSUMED ") + group + " " + m.getKeys() + " " + m.getMsgId()
                    + " " + m.getReconsumeTimes() + " " + m.getUserProperty("origin"));
            }
            return failing ? ConsumeConcurrentlyStatus.RECONSUME_LATER : ConsumeConcurrentlyStatus.CONSUME_SUCCESS;
        });
        c.start();
        consumers.put(group, c);
    }
}
