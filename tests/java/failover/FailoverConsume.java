import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

import org.apache.rocketmq.client.consumer.DefaultMQPushConsumer;
import org.apache.rocketmq.client.consumer.listener.ConsumeConcurrentlyStatus;
import org.apache.rocketmq.client.consumer.listener.MessageListenerConcurrently;
import org.apache.rocketmq.common.consumer.ConsumeFromWhere;
import org.apache.rocketmq.common.message.MessageExt;

/**
 * A push consumer of the official Java client for tests/e2e_failover.py. Properties: -Dns,
 * -Dgroup, -Dtopic, -DsleepMs (per message), -Dseconds (how long it runs). Prints "READY" once
 * started, one line "MSG <brokerName> <queueId> <queueOffset> <body>" per delivered message
 * (duplicates included), then "END" and shuts down (which persists its offsets). It refreshes
 * routes and persists offsets every second (RocketMQ's defaults are 30 s and 5 s), so that a
 * run stays short; nothing else is changed.
 */
public class FailoverConsume {
    public static void main(String[] args) throws Exception {
        DefaultMQPushConsumer c = new DefaultMQPushConsumer(System.getProperty("group"));
        c.setNamesrvAddr(System.getProperty("ns"));
        c.setPollNameServerInterval(1000);
        c.setPersistConsumerOffsetInterval(1000);
        c.setConsumeFromWhere(ConsumeFromWhere.CONSUME_FROM_FIRST_OFFSET);
        c.setConsumeThreadMin(1);
        c.setConsumeThreadMax(1);
        c.setPullBatchSize(8);
        c.subscribe(System.getProperty("topic"), "*");
        final long sleepMs = Long.parseLong(System.getProperty("sleepMs", "0"));
        c.registerMessageListener(new MessageListenerConcurrently() {
            public ConsumeConcurrentlyStatus consumeMessage(List<MessageExt> msgs,
                    org.apache.rocketmq.client.consumer.listener.ConsumeConcurrentlyContext ctx) {
                for (MessageExt m : msgs) {
                    if (sleepMs > 0) {
                        try {
                            Thread.sleep(sleepMs);
                        } catch (InterruptedException e) {
                            Thread.currentThread().interrupt();
                        }
                    }
                    synchronized (System.out) {
                        System.out.println("MSG " + m.getBrokerName() + " " + m.getQueueId() + " "
                            + m.getQueueOffset() + " " + new String(m.getBody(), StandardCharsets.UTF_8));
                        System.out.flush();
                    }
                }
                return ConsumeConcurrentlyStatus.CONSUME_SUCCESS;
            }
        });
        c.start();
        System.out.println("READY");
        System.out.flush();
        Thread.sleep(Long.parseLong(System.getProperty("seconds", "30")) * 1000L);
        c.shutdown();
        synchronized (System.out) {
            System.out.println("END");
            System.out.flush();
        }
    }
}
