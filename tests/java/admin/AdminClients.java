import java.nio.charset.StandardCharsets;
import java.util.List;

import org.apache.rocketmq.client.consumer.DefaultMQPushConsumer;
import org.apache.rocketmq.client.consumer.listener.ConsumeConcurrentlyStatus;
import org.apache.rocketmq.client.consumer.listener.MessageListenerConcurrently;
import org.apache.rocketmq.client.producer.DefaultMQProducer;
import org.apache.rocketmq.client.producer.SendResult;
import org.apache.rocketmq.common.consumer.ConsumeFromWhere;
import org.apache.rocketmq.common.message.Message;
import org.apache.rocketmq.common.message.MessageClientExt;
import org.apache.rocketmq.common.message.MessageExt;

/**
 * The online clients mqadmin's commands look at: a producer that keeps sending (so the broker
 * has rates to report and producer connections to list) and a push consumer that keeps consuming
 * (so consumerStatus, resetOffsetByTime and queryMsgById -d reach a live client).
 *
 * Args: namesrv topic producerGroup consumerGroup sendsPerSecond. Prints one JSON line per event
 * ({"event":"ready"|"sent"|"consumed",...}) and runs until stdin closes.
 */
public class AdminClients {
    public static void main(String[] args) throws Exception {
        String ns = args[0];
        String topic = args[1];
        int perSecond = Integer.parseInt(args[4]);
        DefaultMQPushConsumer consumer = new DefaultMQPushConsumer(args[3]);
        consumer.setNamesrvAddr(ns);
        consumer.setInstanceName("admin-consumer");
        consumer.setConsumeFromWhere(ConsumeFromWhere.CONSUME_FROM_FIRST_OFFSET);
        consumer.subscribe(topic, "*");
        consumer.registerMessageListener(new MessageListenerConcurrently() {
            @Override
            public ConsumeConcurrentlyStatus consumeMessage(List<MessageExt> msgs,
                org.apache.rocketmq.client.consumer.listener.ConsumeConcurrentlyContext ctx) {
                for (MessageExt m : msgs) {
                    String offsetId = m instanceof MessageClientExt ? ((MessageClientExt) m).getOffsetMsgId() : "";
                    emit("{\"event\":\"consumed\",\"msgId\":\"" + m.getMsgId() + "\",\"offsetMsgId\":\""
                        + offsetId + "\",\"broker\":\""
                        + m.getBrokerName() + "\",\"queueId\":" + m.getQueueId() + ",\"queueOffset\":"
                        + m.getQueueOffset() + ",\"body\":\"" + new String(m.getBody(), StandardCharsets.UTF_8)
                        + "\"}");
                }
                return ConsumeConcurrentlyStatus.CONSUME_SUCCESS;
            }
        });
        consumer.start();
        DefaultMQProducer producer = new DefaultMQProducer(args[2]);
        producer.setNamesrvAddr(ns);
        producer.setInstanceName("admin-producer");
        producer.start();
        emit("{\"event\":\"ready\"}");
        Thread sender = new Thread(() -> {
            long n = 0;
            while (!Thread.currentThread().isInterrupted()) {
                try {
                    Message m = new Message(topic, "TagLive", "live-" + n,
                        ("live-body-" + n).getBytes(StandardCharsets.UTF_8));
                    SendResult r = producer.send(m);
                    emit("{\"event\":\"sent\",\"n\":" + n + ",\"msgId\":\"" + r.getMsgId() + "\",\"offsetMsgId\":\""
                        + r.getOffsetMsgId() + "\"}");
                    n++;
                    Thread.sleep(1000 / Math.max(1, perSecond));
                } catch (InterruptedException e) {
                    return;
                } catch (Exception e) {
                    emit("{\"event\":\"send_error\",\"error\":\"" + e.toString().replace('"', '\'') + "\"}");
                    try {
                        Thread.sleep(200);
                    } catch (InterruptedException ie) {
                        return;
                    }
                }
            }
        });
        sender.setDaemon(true);
        sender.start();
        while (System.in.read() >= 0) {
            // runs until the test closes stdin
        }
        sender.interrupt();
        producer.shutdown();
        consumer.shutdown();
        System.exit(0);
    }

    static synchronized void emit(String line) {
        System.out.println(line);
        System.out.flush();
    }
}
